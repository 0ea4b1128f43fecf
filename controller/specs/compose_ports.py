"""Compose `ports` and `expose` entries, turned into `ExposedPorts` and `PortBindings`.

Short form: `[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]`, where ports may be ranges
("9000-9001") and an IPv6 host IP is written in brackets ("[::1]:8080:80"). An empty
published port ("127.0.0.1::80") or none at all ("80") lets the engine pick a free host port.
Long form: a mapping with target, published, host_ip, protocol and mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.errors import SpecError
from controller.specs.compose_values import as_int, as_mapping, as_str, check_keys, describe

PROTOCOLS = ("tcp", "udp", "sctp")
LONG_FORM_KEYS = ("target", "published", "host_ip", "protocol", "mode")
PORT_HINT = (
    'a port such as "8080", "18080:8080", "127.0.0.1:18080:8080", "127.0.0.1::8080", '
    '"9000-9001:9000-9001", "53:53/udp" or "[::1]:8080:80"'
)

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class PortBinding:
    """One container port (as "8080/tcp") and where the host publishes it."""

    container_port: str
    host_ip: str
    host_port: str  # "" lets the engine choose; may be a range such as "9000-9010"


def parse_port_entry(entry: Any, path: str) -> list[PortBinding]:
    """Parse one `ports` entry in short (string or integer) or long (mapping) form."""
    if isinstance(entry, dict):
        return _parse_long_form(entry, path)
    if isinstance(entry, int) and not isinstance(entry, bool):
        entry = str(entry)
    if not isinstance(entry, str):
        raise SpecError(path, f"invalid port {describe(entry)}: expected {PORT_HINT}, or a mapping with target")
    return _parse_short_form(entry, path)


def parse_expose_entry(entry: Any, path: str) -> list[str]:
    """Parse one `expose` entry ("8080", "8080/udp", "9000-9001", 8080) into "PORT/PROTO" keys."""
    if isinstance(entry, int) and not isinstance(entry, bool):
        entry = str(entry)
    if not isinstance(entry, str):
        raise SpecError(path, f'invalid port {describe(entry)}: expected a port such as "8080", "8080/udp" or "9000-9001"')
    text, protocol = _split_protocol(entry.strip(), entry, path)
    first, last = _parse_range(text, entry, path)
    return [f"{port}/{protocol}" for port in range(first, last + 1)]


def _parse_short_form(entry: str, path: str) -> list[PortBinding]:
    text, protocol = _split_protocol(entry.strip(), entry, path)

    host_ip = ""
    if text.startswith("["):
        closing = text.find("]")
        if closing < 0 or text[closing + 1 : closing + 2] != ":":
            raise SpecError(path, f"invalid port {entry!r}: expected [IPv6]:PUBLISHED:TARGET such as \"[::1]:8080:80\"")
        host_ip = text[1:closing]
        published, separator, target = text[closing + 2 :].partition(":")
        if not separator:
            raise SpecError(path, f"invalid port {entry!r}: after the host IP expected PUBLISHED:TARGET")
    else:
        parts = text.split(":")
        if len(parts) == 1:
            published, target = "", parts[0]
        elif len(parts) == 2:
            published, target = parts
            if not published:
                raise SpecError(path, f"invalid port {entry!r}: empty published port; expected {PORT_HINT}")
        elif len(parts) == 3:
            host_ip, published, target = parts
            if not host_ip:
                raise SpecError(path, f"invalid port {entry!r}: empty host IP; expected {PORT_HINT}")
        else:
            raise SpecError(path, f"invalid port {entry!r}: too many colons; write an IPv6 host IP in brackets, as in \"[::1]:8080:80\"")

    return _bind(target, published, host_ip, protocol, entry, path)


def _parse_long_form(entry: dict[str, Any], path: str) -> list[PortBinding]:
    as_mapping(entry, path)
    check_keys(entry, path, LONG_FORM_KEYS)
    if "target" not in entry:
        raise SpecError(f"{path}.target", "missing: the long form needs the container port as target, e.g. {target: 80, published: 8080}")

    target = as_int(entry["target"], f"{path}.target", minimum=1)
    if target > 65535:
        raise SpecError(f"{path}.target", f"invalid port {target}: expected 1 to 65535")

    published = entry.get("published")
    if published is None:
        published_text = ""
    elif isinstance(published, int) and not isinstance(published, bool):
        published_text = str(published)
    else:
        published_text = as_str(published, f"{path}.published", allow_empty=True)

    host_ip = "" if entry.get("host_ip") is None else as_str(entry["host_ip"], f"{path}.host_ip")
    host_ip = host_ip.removeprefix("[").removesuffix("]")

    protocol = "tcp" if entry.get("protocol") is None else as_str(entry["protocol"], f"{path}.protocol").lower()
    if protocol not in PROTOCOLS:
        raise SpecError(f"{path}.protocol", f"invalid protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")

    mode = entry.get("mode")
    if mode is not None and mode not in ("host", "ingress"):
        raise SpecError(f"{path}.mode", f"invalid mode {mode!r}: expected host or ingress")

    return _bind(str(target), published_text, host_ip, protocol, str(entry), path)


def _split_protocol(text: str, entry: str, path: str) -> tuple[str, str]:
    ports, separator, protocol = text.rpartition("/")
    if not separator:
        return text, "tcp"
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        raise SpecError(path, f"invalid protocol {protocol!r} in port {entry!r}: expected one of {', '.join(PROTOCOLS)}")
    return ports, protocol


def _parse_range(text: str, entry: str, path: str) -> tuple[int, int]:
    match = _RANGE.match(text.strip())
    if match is None:
        raise SpecError(path, f"invalid port {entry!r}: expected {PORT_HINT}")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not 1 <= first <= last <= 65535:
        raise SpecError(path, f"invalid port range in {entry!r}: ports run from 1 to 65535, the first not above the last")
    return first, last


def _bind(target: str, published: str, host_ip: str, protocol: str, entry: str, path: str) -> list[PortBinding]:
    target_first, target_last = _parse_range(target, entry, path)
    target_count = target_last - target_first + 1
    container_ports = [f"{port}/{protocol}" for port in range(target_first, target_last + 1)]

    if not published:
        return [PortBinding(port, host_ip, "") for port in container_ports]

    published_first, published_last = _parse_range(published, entry, path)
    published_count = published_last - published_first + 1
    if target_count == 1:
        host_port = str(published_first) if published_count == 1 else f"{published_first}-{published_last}"
        return [PortBinding(container_ports[0], host_ip, host_port)]
    if published_count != target_count:
        raise SpecError(
            path,
            f"invalid port {entry!r}: the published range has {published_count} ports and the target range "
            f"{target_count}; ranges must have the same length",
        )
    return [
        PortBinding(port, host_ip, str(published_first + offset)) for offset, port in enumerate(container_ports)
    ]
