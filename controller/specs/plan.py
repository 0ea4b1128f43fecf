"""The container plan: what the operations hand to the Docker client to create a container.

Both the Compose parser (start) and the carry-over rules (recreate) produce a
`ContainerPlan`. Its `body` is a Docker Engine API `ContainerCreate` request body as API 1.41
defines it, so the client can pass it to the engine unchanged. That API version accepts only
one network in `NetworkingConfig.EndpointsConfig`, so a plan names the first network there and
lists the others in `connect`, to be attached after create and before start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Labels that dockwright sets on what it creates.
LABEL_SPEC_HASH = "dockwright.spec-hash"
LABEL_CREATED_BY = "dockwright.created-by"
# The reference a container was meant to follow, on a container that dockwright had to create
# from an image id (a restored AutoRemove original whose tag had moved on).
LABEL_IMAGE_REFERENCE = "dockwright.image-reference"
CREATED_BY_VALUE = "dockwright"


@dataclass(frozen=True)
class NetworkAttachment:
    """One network a container joins, with its per-container endpoint settings."""

    name: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    mac_address: str | None = None
    # Extra keys of the compose or inspect endpoint config that are kept as they are
    # (for example `DriverOpts` or `Links`), already in Engine API spelling.
    extra: dict[str, Any] = field(default_factory=dict)

    def endpoint_config(self) -> dict[str, Any]:
        """Build the Engine API `EndpointSettings` for this attachment."""
        config: dict[str, Any] = dict(self.extra)
        if self.aliases:
            config["Aliases"] = list(self.aliases)

        ipam: dict[str, str] = {}
        if self.ipv4_address:
            ipam["IPv4Address"] = self.ipv4_address
        if self.ipv6_address:
            ipam["IPv6Address"] = self.ipv6_address
        if ipam:
            config["IPAMConfig"] = ipam

        if self.mac_address:
            config["MacAddress"] = self.mac_address
        return config


@dataclass(frozen=True)
class NetworkRequest:
    """A named network the container needs; created with these settings when it is missing."""

    name: str
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    ipam: dict[str, Any] | None = None  # Engine API IPAM object, e.g. {"Config": [{"Subnet": ...}]}
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    external: bool = False  # must already exist; never created


@dataclass(frozen=True)
class VolumeRequest:
    """A named volume the container needs; created when it is missing."""

    name: str
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    external: bool = False


@dataclass(frozen=True)
class ContainerPlan:
    """Everything needed to create and start one container.

    `body` never contains more than one entry in `NetworkingConfig.EndpointsConfig`; the
    networks in `connect` are attached, in order, after create and before start.
    """

    name: str
    image: str
    body: dict[str, Any]
    connect: tuple[NetworkAttachment, ...] = ()
    networks: tuple[NetworkRequest, ...] = ()
    volumes: tuple[VolumeRequest, ...] = ()
    pull_policy: str | None = None
