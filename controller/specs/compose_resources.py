"""Networks and named volumes of a Compose service: attachments and create requests.

Inline specs (no compose file) use network and volume names as they are. For a compose file,
a service's network or volume key must be defined under the file's top-level `networks:` or
`volumes:`. Its engine name is then `PROJECT_KEY` unless the definition sets `name:`, and
`external: true` means it must already exist. Every network and volume dockwright would
create carries the `dockwright.created-by` label, plus the Compose project labels for
compose files.
"""

from __future__ import annotations

import ipaddress

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.errors import SpecError
from controller.specs.compose_values import (
    as_bool,
    as_int,
    as_list,
    as_mapping,
    optional_mapping,
    as_str,
    as_str_list,
    check_keys,
    describe,
    list_or_mapping,
    scalar_text,
)
from controller.specs.plan import CREATED_BY_VALUE, LABEL_CREATED_BY, NetworkAttachment, NetworkRequest, VolumeRequest

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NETWORK = "com.docker.compose.network"
LABEL_VOLUME = "com.docker.compose.volume"
LABEL_CONTAINER_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"

# Networks every engine has; they are never created and take no aliases.
PREDEFINED_NETWORKS = ("bridge", "host", "none")

SERVICE_NETWORK_KEYS = ("aliases", "ipv4_address", "ipv6_address", "mac_address", "priority", "driver_opts")
NETWORK_DEFINITION_KEYS = (
    "name", "external", "driver", "driver_opts", "ipam", "internal", "attachable", "enable_ipv6", "labels",
)
VOLUME_DEFINITION_KEYS = ("name", "external", "driver", "driver_opts", "labels")
IPAM_KEYS = ("driver", "config", "options")
IPAM_POOL_KEYS = {"subnet": "Subnet", "ip_range": "IPRange", "gateway": "Gateway", "aux_addresses": "AuxiliaryAddresses"}


@dataclass
class Resources:
    """Resolves the network and volume keys of one service and collects their requests.

    `project` is set for compose files and `None` for inline specs; `networks` and `volumes`
    are the compose file's top-level definitions.
    """

    project: str | None
    networks: Mapping[str, Any] = field(default_factory=dict)
    volumes: Mapping[str, Any] = field(default_factory=dict)
    network_requests: dict[str, NetworkRequest] = field(default_factory=dict)
    volume_requests: dict[str, VolumeRequest] = field(default_factory=dict)

    def resolve_volume(self, key: str, path: str) -> str:
        """Return the engine name of the named volume `key` and record its request."""
        if self.project is None:
            self.volume_requests.setdefault(key, VolumeRequest(name=key, labels={LABEL_CREATED_BY: CREATED_BY_VALUE}))
            return key

        if key not in self.volumes:
            raise SpecError(path, f"refers to undefined volume {key!r}: define it under the compose file's top-level volumes key")
        definition_path = f"volumes.{key}"
        definition = optional_mapping(self.volumes[key], definition_path)
        check_keys(definition, definition_path, VOLUME_DEFINITION_KEYS)
        name, external = self._name_and_external(key, definition, definition_path)

        labels = {LABEL_CREATED_BY: CREATED_BY_VALUE, LABEL_PROJECT: self.project, LABEL_VOLUME: key}
        labels.update(_labels(definition.get("labels"), f"{definition_path}.labels"))
        self.volume_requests.setdefault(
            name,
            VolumeRequest(
                name=name,
                driver=_optional_str(definition.get("driver"), f"{definition_path}.driver"),
                driver_opts=_string_map(definition.get("driver_opts"), f"{definition_path}.driver_opts"),
                labels={} if external else labels,
                external=external,
            ),
        )
        return name

    def resolve_network(self, key: str, path: str) -> str:
        """Return the engine name of the network `key` and record its request."""
        if self.project is None:
            labels = {} if key in PREDEFINED_NETWORKS else {LABEL_CREATED_BY: CREATED_BY_VALUE}
            self.network_requests.setdefault(
                key, NetworkRequest(name=key, labels=labels, external=key in PREDEFINED_NETWORKS)
            )
            return key

        if key not in self.networks and key != "default":
            raise SpecError(path, f"refers to undefined network {key!r}: define it under the compose file's top-level networks key")
        definition_path = f"networks.{key}"
        definition = optional_mapping(self.networks.get(key), definition_path)
        check_keys(definition, definition_path, NETWORK_DEFINITION_KEYS)
        name, external = self._name_and_external(key, definition, definition_path)

        labels = {LABEL_CREATED_BY: CREATED_BY_VALUE, LABEL_PROJECT: self.project, LABEL_NETWORK: key}
        labels.update(_labels(definition.get("labels"), f"{definition_path}.labels"))
        self.network_requests.setdefault(
            name,
            NetworkRequest(
                name=name,
                driver=_optional_str(definition.get("driver"), f"{definition_path}.driver"),
                driver_opts=_string_map(definition.get("driver_opts"), f"{definition_path}.driver_opts"),
                ipam=_ipam(definition.get("ipam"), f"{definition_path}.ipam"),
                labels={} if external else labels,
                internal=as_bool(definition.get("internal", False), f"{definition_path}.internal"),
                attachable=as_bool(definition.get("attachable", False), f"{definition_path}.attachable"),
                enable_ipv6=as_bool(definition.get("enable_ipv6", False), f"{definition_path}.enable_ipv6"),
                external=external,
            ),
        )
        return name

    def _name_and_external(self, key: str, definition: Mapping[str, Any], path: str) -> tuple[str, bool]:
        external_value = definition.get("external", False)
        explicit = definition.get("name")
        if isinstance(external_value, Mapping):
            # The legacy form `external: {name: NAME}`.
            check_keys(external_value, f"{path}.external", ("name",))
            explicit = external_value.get("name", explicit)
            external = True
        else:
            external = as_bool(external_value, f"{path}.external")

        if explicit is not None:
            return as_str(explicit, f"{path}.name"), external
        if external:
            return key, True
        return f"{self.project}_{key}", False


@dataclass(frozen=True)
class ServiceNetwork:
    """One entry of a service's `networks`, before its name is resolved."""

    key: str
    path: str
    priority: int = 0
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    mac_address: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)


def parse_service_networks(value: Any, path: str) -> list[ServiceNetwork]:
    """Read a service's `networks` (a list of keys, or a mapping of keys to settings).

    The result is ordered as the containers join them: higher `priority` first, then by key.
    """
    entries: list[ServiceNetwork] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            key = as_str(item, f"{path}[{index}]")
            entries.append(ServiceNetwork(key=key, path=f"{path}[{index}]"))
    elif isinstance(value, Mapping):
        for key, settings in value.items():
            entry_path = f"{path}.{key}"
            if not isinstance(key, str) or not key:
                raise SpecError(entry_path, f"expected a network name as key, got {describe(key)}")
            entries.append(_parse_network_settings(key, settings, entry_path))
    else:
        raise SpecError(
            path,
            f'expected a list of network names such as ["front", "back"] or a mapping such as '
            f"{{front: {{aliases: [web]}}}}; got {describe(value)}",
        )

    keys = [entry.key for entry in entries]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise SpecError(path, f"network {duplicates[0]!r} is listed twice")
    return sorted(entries, key=lambda entry: (-entry.priority, entry.key))


def attachment_for(entry: ServiceNetwork, name: str, *, extra_aliases: tuple[str, ...] = ()) -> NetworkAttachment:
    """Build the attachment of a resolved service network; `extra_aliases` come first."""
    aliases = tuple(dict.fromkeys((*extra_aliases, *entry.aliases)))
    if name in PREDEFINED_NETWORKS and entry.aliases:
        raise SpecError(f"{entry.path}.aliases", f"network {name!r} takes no aliases; aliases work on user-defined networks only")
    if name in PREDEFINED_NETWORKS:
        aliases = ()
    extra: dict[str, Any] = {"DriverOpts": dict(entry.driver_opts)} if entry.driver_opts else {}
    return NetworkAttachment(
        name=name,
        aliases=aliases,
        ipv4_address=entry.ipv4_address,
        ipv6_address=entry.ipv6_address,
        mac_address=entry.mac_address,
        extra=extra,
    )


def _parse_network_settings(key: str, settings: Any, path: str) -> ServiceNetwork:
    if settings is None:
        return ServiceNetwork(key=key, path=path)
    settings = as_mapping(settings, path, hint="{aliases: [web], ipv4_address: 172.28.0.10}")
    check_keys(settings, path, SERVICE_NETWORK_KEYS)
    return ServiceNetwork(
        key=key,
        path=path,
        priority=as_int(settings.get("priority", 0), f"{path}.priority"),
        aliases=tuple(as_str_list(settings["aliases"], f"{path}.aliases")) if settings.get("aliases") is not None else (),
        ipv4_address=_optional_address(settings.get("ipv4_address"), f"{path}.ipv4_address", version=4),
        ipv6_address=_optional_address(settings.get("ipv6_address"), f"{path}.ipv6_address", version=6),
        mac_address=_optional_str(settings.get("mac_address"), f"{path}.mac_address"),
        driver_opts=_string_map(settings.get("driver_opts"), f"{path}.driver_opts"),
    )


def _ipam(value: Any, path: str) -> dict[str, Any] | None:
    """Convert a Compose `ipam` mapping to the Engine API IPAM object."""
    if value is None:
        return None
    value = as_mapping(value, path, hint="{config: [{subnet: 172.28.0.0/16}]}")
    check_keys(value, path, IPAM_KEYS)
    ipam: dict[str, Any] = {}
    if value.get("driver") is not None:
        ipam["Driver"] = as_str(value["driver"], f"{path}.driver")

    pools = []
    for index, pool in enumerate(as_list(value.get("config") if value.get("config") is not None else [], f"{path}.config", hint="[{subnet: 172.28.0.0/16}]")):
        pool_path = f"{path}.config[{index}]"
        pool = as_mapping(pool, pool_path, hint="{subnet: 172.28.0.0/16, gateway: 172.28.0.1}")
        check_keys(pool, pool_path, tuple(IPAM_POOL_KEYS))
        converted: dict[str, Any] = {}
        for compose_key, api_key in IPAM_POOL_KEYS.items():
            if pool.get(compose_key) is None:
                continue
            if compose_key == "aux_addresses":
                converted[api_key] = _string_map(pool[compose_key], f"{pool_path}.{compose_key}")
            else:
                converted[api_key] = as_str(pool[compose_key], f"{pool_path}.{compose_key}")
        pools.append(converted)
    if pools:
        ipam["Config"] = pools

    if value.get("options") is not None:
        ipam["Options"] = _string_map(value["options"], f"{path}.options")
    return ipam


def _labels(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    return {name: item or "" for name, item in list_or_mapping(value, path).items()}


def _string_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    mapping = as_mapping(value, path, hint="{key: value}")
    return {str(name): "" if item is None else scalar_text(item, f"{path}.{name}") for name, item in mapping.items()}


def _optional_address(value: Any, path: str, *, version: int) -> str | None:
    """Check a static IPv4 or IPv6 address, so the engine never receives an invalid one."""
    text = _optional_str(value, path)
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or address.version != version:
        example = "172.28.0.10" if version == 4 else "fd00::10"
        raise SpecError(path, f"invalid IPv{version} address {text!r}; write one such as {example}")
    return text


def _optional_str(value: Any, path: str) -> str | None:
    return None if value is None else as_str(value, path)
