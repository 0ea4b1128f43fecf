"""Network carry-over for a recreate: the network mode, networks, aliases, addresses and MAC.

Part of the recreate carry-over rules in `carryover`. The input is `docker inspect` output of
engine 20.10 (API 1.41), whose create request accepts one network only, so the result names one
network to create on and lists the others to connect before start (see `plan.ContainerPlan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.specs.plan import NetworkAttachment

# Networks every engine has. The engine rejects aliases and static addresses on them.
BUILTIN_NETWORKS = frozenset({"bridge", "host", "none"})

# Endpoint settings from inspect that are the user's choice and are kept as they are.
# The rest (NetworkID, EndpointID, Gateway, IPAddress, ...) are assigned by the engine.
_KEPT_ENDPOINT_KEYS = ("Links", "DriverOpts")


@dataclass(frozen=True)
class NetworkCarryOver:
    """The network settings of the new container.

    `network_mode` goes into `HostConfig.NetworkMode`, and `create_on` (if any) is the one entry
    of `NetworkingConfig.EndpointsConfig`. The `connect` networks are attached after create and
    before start. `mac_address` is the user-set MAC for `Config.MacAddress`, or None when the
    engine generated it.
    """

    network_mode: str
    create_on: NetworkAttachment | None
    connect: tuple[NetworkAttachment, ...]
    mac_address: str | None
    notes: tuple[str, ...]

    @property
    def shares_namespace(self) -> bool:
        """Whether the container joins another container's network namespace (`container:X`)."""
        return self.network_mode.startswith("container:")


def plan_networks(container: Mapping[str, Any], *, network_container: str | None) -> NetworkCarryOver:
    """Decide the network mode and attachments of the container that replaces `container`."""
    host_config = container.get("HostConfig") or {}
    config = container.get("Config") or {}
    mode = host_config.get("NetworkMode") or "default"

    # Another container's namespace: nothing of the network is the container's own.
    if mode.startswith("container:"):
        target = network_container or mode.removeprefix("container:")
        note = f"network: shares the network namespace of container {target}"
        return NetworkCarryOver(f"container:{target}", None, (), None, (note,))

    # Host and none modes have no endpoints to configure, and no other network can be connected.
    if mode in ("host", "none"):
        return NetworkCarryOver(mode, None, (), None, (f"network: mode {mode}",))

    networks: Mapping[str, Any] = (container.get("NetworkSettings") or {}).get("Networks") or {}
    short_id = str(container.get("Id", ""))[:12]
    primary = _primary_network(mode, networks)
    notes: list[str] = []

    if primary is None:
        # NOTE: a container disconnected from every network is recreated on its NetworkMode,
        # because inspect output cannot tell whether the user meant to keep it disconnected.
        notes.append(f"network: on no network now; created on its network mode {mode}")
        return NetworkCarryOver(mode, None, (), _user_mac(config), tuple(notes))

    if _network_mode_name(mode) != primary:
        notes.append(f"network: network mode {mode} is not among its networks; created on {primary}")

    mac_address = _user_mac(config)
    create_on = _attachment(primary, networks[primary], short_id=short_id, mac_address=mac_address)
    connect = tuple(
        _attachment(network, endpoint, short_id=short_id, mac_address=None)
        for network, endpoint in networks.items()
        if network != primary
    )

    for attachment in (create_on, *connect):
        notes.append(_describe_attachment(attachment))
    if mac_address:
        notes.append(f"network: keeps the MAC address {mac_address} set by the user")

    network_mode = "default" if mode == "default" and primary == "bridge" else primary
    return NetworkCarryOver(network_mode, create_on, connect, mac_address, tuple(notes))


def _network_mode_name(mode: str) -> str:
    """Return the network name a `HostConfig.NetworkMode` refers to (`default` is `bridge`)."""
    return "bridge" if mode == "default" else mode


def _primary_network(mode: str, networks: Mapping[str, Any]) -> str | None:
    """Pick the network to create on: the one the network mode names, else the first one.

    The network mode may name a network by id, which matches a network whose full id starts with it.
    """
    if not networks:
        return None

    requested = _network_mode_name(mode)
    if requested in networks:
        return requested

    for network, endpoint in networks.items():
        network_id = str((endpoint or {}).get("NetworkID") or "")
        if network_id and network_id.startswith(requested):
            return network
    return next(iter(networks))


def _user_mac(config: Mapping[str, Any]) -> str | None:
    """Return the MAC the user set at create (`Config.MacAddress`, API 1.41), if any.

    Without it the engine generated the MAC, and copying it would give two containers one MAC.
    """
    return config.get("MacAddress") or None


def _attachment(
    network: str,
    endpoint: Mapping[str, Any] | None,
    *,
    short_id: str,
    mac_address: str | None,
) -> NetworkAttachment:
    """Build the attachment to `network` from the old container's inspect endpoint settings."""
    endpoint = endpoint or {}
    if network in BUILTIN_NETWORKS:
        # The engine rejects aliases and static addresses on these networks. Legacy links
        # and a user MAC live in HostConfig.Links and Config.MacAddress.
        return NetworkAttachment(name=network, mac_address=mac_address)

    # The engine adds the container's short id as an alias on user networks. The new
    # container gets its own, so the old one is dropped.
    aliases = tuple(alias for alias in endpoint.get("Aliases") or () if alias != short_id)

    ipam = endpoint.get("IPAMConfig") or {}
    extra = {key: endpoint[key] for key in _KEPT_ENDPOINT_KEYS if endpoint.get(key)}
    if ipam.get("LinkLocalIPs") and not (ipam.get("IPv4Address") or ipam.get("IPv6Address")):
        extra["IPAMConfig"] = {"LinkLocalIPs": list(ipam["LinkLocalIPs"])}
    # TODO: link-local addresses next to a static IPv4/IPv6 address are dropped, because
    # NetworkAttachment.endpoint_config builds IPAMConfig from the two addresses only.

    return NetworkAttachment(
        name=network,
        aliases=aliases,
        ipv4_address=ipam.get("IPv4Address") or None,
        ipv6_address=ipam.get("IPv6Address") or None,
        mac_address=mac_address,
        extra=extra,
    )


def _describe_attachment(attachment: NetworkAttachment) -> str:
    """Describe one kept network attachment in words, for the operation log."""
    details = []
    if attachment.aliases:
        details.append("aliases " + ", ".join(attachment.aliases))
    if attachment.ipv4_address:
        details.append(f"IPv4 address {attachment.ipv4_address}")
    if attachment.ipv6_address:
        details.append(f"IPv6 address {attachment.ipv6_address}")

    line = f"network: keeps network {attachment.name}"
    if details:
        line += " with " + ", ".join(details)
    return line
