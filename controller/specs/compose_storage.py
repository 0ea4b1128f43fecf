"""Compose `volumes`, `tmpfs` and `devices` entries, turned into Engine API host config.

Short-form volumes become `HostConfig.Binds` strings ("SOURCE:TARGET:MODE"), or `Volumes`
entries when anonymous. Long-form volumes become `HostConfig.Mounts`, except a bind with
`create_host_path` or `selinux`, which API 1.41 can only express as a Binds string (a bind
Mount with a missing source fails instead of creating the directory). Relative bind sources
resolve against the compose file's directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.errors import SpecError
from controller.specs.compose_values import as_bool, as_int, as_str, check_keys, describe, optional_mapping
from controller.specs.units import parse_bytes

VOLUME_MODES = frozenset(
    {"ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate",
     "consistent", "cached", "delegated"}
)
PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
LONG_FORM_KEYS = ("type", "source", "target", "read_only", "consistency", "volume", "bind", "tmpfs")
VOLUME_HINT = (
    'a volume such as "data:/data", "./config:/etc/app:ro", "/srv/www:/www" or "/cache", '
    "or a mapping with type, source and target"
)
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Called with a volume key of the service and its field path. It returns the volume's engine
# name and records the volume request, or raises SpecError for an undefined volume.
VolumeResolver = Callable[[str, str], str]


@dataclass
class StorageConfig:
    """The host config parts that volumes and tmpfs mounts produce."""

    binds: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    anonymous: dict[str, dict[str, Any]] = field(default_factory=dict)  # body "Volumes"
    tmpfs: dict[str, str] = field(default_factory=dict)  # HostConfig "Tmpfs"
    targets: dict[str, str] = field(default_factory=dict)  # container path -> field path

    def claim_target(self, target: str, path: str) -> None:
        """Record a container path, rejecting a second mount on it."""
        normalized = os.path.normpath(target)
        if normalized in self.targets:
            raise SpecError(path, f"duplicate mount target {target}: {self.targets[normalized]} mounts there already")
        self.targets[normalized] = path


def parse_volumes(
    value: Any, path: str, *, storage: StorageConfig, base_dir: Path | None, resolve_volume: VolumeResolver
) -> None:
    """Add the service's `volumes` entries to `storage`."""
    if not isinstance(value, list):
        raise SpecError(path, f"expected a list of volumes, each {VOLUME_HINT}; got {describe(value)}")
    for index, entry in enumerate(value):
        entry_path = f"{path}[{index}]"
        if isinstance(entry, str):
            _parse_short_volume(entry, entry_path, storage=storage, base_dir=base_dir, resolve_volume=resolve_volume)
        elif isinstance(entry, dict):
            _parse_long_volume(entry, entry_path, storage=storage, base_dir=base_dir, resolve_volume=resolve_volume)
        else:
            raise SpecError(entry_path, f"invalid volume {describe(entry)}: expected {VOLUME_HINT}")


def parse_tmpfs(value: Any, path: str, *, storage: StorageConfig) -> None:
    """Add the service's `tmpfs` entries ("/run" or "/run:size=64m,mode=1777") to `storage`."""
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list):
        raise SpecError(path, f'expected a path such as "/run" or a list of them, got {describe(value)}')
    for index, entry in enumerate(entries):
        entry_path = path if isinstance(value, str) else f"{path}[{index}]"
        text = as_str(entry, entry_path)
        target, _, options = text.partition(":")
        _check_container_path(target, text, entry_path)
        storage.claim_target(target, entry_path)
        storage.tmpfs[target] = options


def parse_devices(value: Any, path: str) -> list[dict[str, str]]:
    """Convert `devices` ("/dev/x", "/dev/x:/dev/y", "/dev/x:/dev/y:rwm" or long form)."""
    if not isinstance(value, list):
        raise SpecError(path, f'expected a list of devices such as ["/dev/fuse", "/dev/sda:/dev/xvda:r"], got {describe(value)}')
    devices = []
    for index, entry in enumerate(value):
        entry_path = f"{path}[{index}]"
        if isinstance(entry, dict):
            check_keys(entry, entry_path, ("source", "target", "permissions"))
            if "source" not in entry:
                raise SpecError(f"{entry_path}.source", "missing: the device path on the host")
            host = as_str(entry["source"], f"{entry_path}.source")
            container = as_str(entry.get("target", host), f"{entry_path}.target")
            permissions = as_str(entry.get("permissions", "rwm"), f"{entry_path}.permissions")
        else:
            text = as_str(entry, entry_path)
            parts = text.split(":")
            if len(parts) == 2 and not parts[1].startswith("/"):
                parts = [parts[0], parts[0], parts[1]]
            if len(parts) > 3 or not all(parts):
                raise SpecError(entry_path, f"invalid device {text!r}: expected HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]]")
            host = parts[0]
            container = parts[1] if len(parts) > 1 else host
            permissions = parts[2] if len(parts) > 2 else "rwm"
        if not permissions or set(permissions) - set("rwm"):
            raise SpecError(entry_path, f"invalid device permissions {permissions!r}: expected letters from r, w and m")
        devices.append({"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": permissions})
    return devices


def _parse_short_volume(
    entry: str, path: str, *, storage: StorageConfig, base_dir: Path | None, resolve_volume: VolumeResolver
) -> None:
    parts = entry.split(":")
    if not entry or len(parts) > 3 or not all(parts):
        raise SpecError(path, f"invalid volume {entry!r}: expected {VOLUME_HINT}")

    if len(parts) == 1:
        target = parts[0]
        _check_container_path(target, entry, path)
        storage.claim_target(target, path)
        storage.anonymous[target] = {}
        return

    source, target = parts[0], parts[1]
    modes = parts[2].split(",") if len(parts) == 3 else []
    _check_container_path(target, entry, path)
    unknown = [mode for mode in modes if mode not in VOLUME_MODES]
    if unknown:
        raise SpecError(path, f"invalid volume mode {unknown[0]!r} in {entry!r}: expected any of {', '.join(sorted(VOLUME_MODES))}")
    if "ro" in modes and "rw" in modes:
        raise SpecError(path, f"invalid volume {entry!r}: ro and rw exclude each other")

    if _is_path(source):
        if "nocopy" in modes:
            raise SpecError(path, f"invalid volume {entry!r}: nocopy applies to named volumes only, not to bind mounts")
        source = _host_path(source, entry, path, base_dir=base_dir)
    else:
        _check_volume_name(source, entry, path)
        source = resolve_volume(source, path)

    storage.claim_target(target, path)
    storage.binds.append(":".join([source, target, *([",".join(modes)] if modes else [])]))


def _parse_long_volume(
    entry: dict[str, Any], path: str, *, storage: StorageConfig, base_dir: Path | None, resolve_volume: VolumeResolver
) -> None:
    check_keys(entry, path, LONG_FORM_KEYS)
    kind = entry.get("type")
    if kind not in ("volume", "bind", "tmpfs"):
        raise SpecError(f"{path}.type", f"invalid volume type {kind!r}: expected volume, bind or tmpfs")
    if "target" not in entry:
        raise SpecError(f"{path}.target", "missing: the path inside the container")
    target = as_str(entry["target"], f"{path}.target")
    _check_container_path(target, target, f"{path}.target")
    read_only = as_bool(entry.get("read_only", False), f"{path}.read_only")
    source = entry.get("source")
    for other in ("volume", "bind", "tmpfs"):
        if other in entry and other != kind:
            raise SpecError(f"{path}.{other}", f"options for {other} do not apply to a volume of type {kind}")

    mount: dict[str, Any] = {"Type": kind, "Target": target}
    if kind == "volume":
        options = optional_mapping(entry.get("volume"), f"{path}.volume")
        check_keys(options, f"{path}.volume", ("nocopy",))
        if source is not None:
            name = as_str(source, f"{path}.source")
            _check_volume_name(name, name, f"{path}.source")
            mount["Source"] = resolve_volume(name, f"{path}.source")
        if as_bool(options.get("nocopy", False), f"{path}.volume.nocopy"):
            mount["VolumeOptions"] = {"NoCopy": True}

    elif kind == "bind":
        if source is None:
            raise SpecError(f"{path}.source", "missing: a bind mount needs the host path as source")
        host = _host_path(as_str(source, f"{path}.source"), str(source), f"{path}.source", base_dir=base_dir)
        options = optional_mapping(entry.get("bind"), f"{path}.bind")
        check_keys(options, f"{path}.bind", ("propagation", "create_host_path", "selinux"))
        propagation = options.get("propagation")
        if propagation is not None and propagation not in PROPAGATIONS:
            raise SpecError(f"{path}.bind.propagation", f"invalid propagation {propagation!r}: expected one of {', '.join(PROPAGATIONS)}")
        selinux = options.get("selinux")
        if selinux is not None and selinux not in ("z", "Z"):
            raise SpecError(f"{path}.bind.selinux", f"invalid selinux label {selinux!r}: expected z or Z")

        if as_bool(options.get("create_host_path", False), f"{path}.bind.create_host_path") or selinux:
            modes = [mode for mode in ("ro" if read_only else None, propagation, selinux) if mode]
            storage.claim_target(target, path)
            storage.binds.append(":".join([host, target, *([",".join(modes)] if modes else [])]))
            return
        mount["Source"] = host
        if propagation:
            mount["BindOptions"] = {"Propagation": propagation}

    else:
        if source is not None:
            raise SpecError(f"{path}.source", "a tmpfs mount has no source; remove it")
        options = optional_mapping(entry.get("tmpfs"), f"{path}.tmpfs")
        check_keys(options, f"{path}.tmpfs", ("size", "mode"))
        tmpfs_options: dict[str, int] = {}
        if options.get("size") is not None:
            tmpfs_options["SizeBytes"] = parse_bytes(options["size"], field=f"{path}.tmpfs.size")
        if options.get("mode") is not None:
            tmpfs_options["Mode"] = _parse_file_mode(options["mode"], f"{path}.tmpfs.mode")
        if tmpfs_options:
            mount["TmpfsOptions"] = tmpfs_options

    if read_only:
        mount["ReadOnly"] = True
    if entry.get("consistency") is not None:
        mount["Consistency"] = as_str(entry["consistency"], f"{path}.consistency")
    storage.claim_target(target, path)
    storage.mounts.append(mount)


def _parse_file_mode(value: Any, path: str) -> int:
    """Read a file mode: a string is octal ("1777"); an integer is taken as it is (YAML 0o1777)."""
    if isinstance(value, str):
        try:
            return int(value, 8)
        except ValueError:
            raise SpecError(path, f'invalid file mode {value!r}: expected octal digits such as "1777"') from None
    return as_int(value, path, minimum=0)


def _is_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def _host_path(source: str, entry: str, path: str, *, base_dir: Path | None) -> str:
    if source.startswith("~"):
        return os.path.expanduser(source)
    if source.startswith("/"):
        return os.path.normpath(source)
    if base_dir is None:
        raise SpecError(
            path,
            f"relative bind source in {entry!r} needs a compose file to resolve against; use an absolute host path",
        )
    return os.path.normpath(os.path.join(base_dir, source))


def _check_container_path(target: str, entry: str, path: str) -> None:
    if not target.startswith("/"):
        raise SpecError(path, f"invalid volume {entry!r}: the container path {target!r} must be absolute")


def _check_volume_name(name: str, entry: str, path: str) -> None:
    if not VOLUME_NAME.match(name):
        raise SpecError(
            path,
            f"invalid volume name {name!r} in {entry!r}: expected letters, digits, _ . - "
            "(start a bind source with /, ./ or ~/)",
        )
