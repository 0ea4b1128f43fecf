"""The Compose service parser: one service mapping in, one `ContainerPlan` out.

`plan_service` reads a Compose Specification service mapping (inline from a `start` row's
`spec`, or loaded by `compose_file.load_compose_service`) and builds the Engine API 1.41
create body, the extra networks to connect and the networks and volumes to create. Every
key is either converted or rejected by name; none is dropped. Errors are `SpecError`s that
name the field path (`spec.ports[1]`) and the value. The only I/O is reading `env_file`s.

Neighbours: `compose_values` (type checks), `compose_ports`, `compose_storage` (volumes,
tmpfs, devices), `compose_resources` (networks and volumes to create), `units` (durations
and sizes).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from controller.errors import SpecError
from controller.specs.compose_file import ComposeService, default_container_name, read_env_file, spec_hash
from controller.specs.compose_ports import parse_expose_entry, parse_port_entry
from controller.specs.compose_resources import (
    LABEL_CONTAINER_NUMBER,
    LABEL_ONEOFF,
    LABEL_PROJECT,
    LABEL_SERVICE,
    Resources,
    attachment_for,
    parse_service_networks,
)
from controller.specs.compose_storage import StorageConfig, parse_devices, parse_tmpfs, parse_volumes
from controller.specs.compose_values import (
    as_bool,
    as_nano_cpus,
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
from controller.specs.plan import CREATED_BY_VALUE, LABEL_CREATED_BY, LABEL_SPEC_HASH, ContainerPlan
from controller.specs.units import parse_bytes, parse_duration

__all__ = ["SUPPORTED_KEYS", "plan_compose_service", "plan_service", "spec_hash"]

# Container-level fields that take a plain string.
_CONFIG_STRINGS = {
    "user": "User",
    "working_dir": "WorkingDir",
    "hostname": "Hostname",
    "domainname": "Domainname",
    "stop_signal": "StopSignal",
    "mac_address": "MacAddress",
}
_CONFIG_BOOLS = {"tty": "Tty", "stdin_open": "OpenStdin"}
_HOST_STRINGS = {
    "ipc": "IpcMode",
    "pid": "PidMode",
    "userns_mode": "UsernsMode",
    "cgroup_parent": "CgroupParent",
    "runtime": "Runtime",
    "cpuset": "CpusetCpus",
}
_HOST_BOOLS = {"read_only": "ReadonlyRootfs", "init": "Init", "privileged": "Privileged", "oom_kill_disable": "OomKillDisable"}
_HOST_STRING_LISTS = {"cap_add": "CapAdd", "cap_drop": "CapDrop", "security_opt": "SecurityOpt"}
# Fields that take one string or a list of strings.
_HOST_STRING_OR_LISTS = {"dns": "Dns", "dns_search": "DnsSearch", "dns_opt": "DnsOptions"}
# Integer fields and their lowest valid value (-1 means unlimited where allowed).
_HOST_INTS = {
    "cpu_shares": ("CpuShares", 0),
    "pids_limit": ("PidsLimit", -1),
    "cpu_quota": ("CpuQuota", -1),
    "cpu_period": ("CpuPeriod", 0),
    "oom_score_adj": ("OomScoreAdj", -1000),
}
_HOST_BYTES = {"mem_limit": "Memory", "mem_reservation": "MemoryReservation", "shm_size": "ShmSize"}

RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
PULL_POLICIES = {"always": "always", "never": "never", "missing": "missing", "if_not_present": "missing"}
NETWORK_MODE_HINT = "host, none, bridge or container:NAME"
HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")
LOGGING_KEYS = ("driver", "options")
DEPLOY_KEYS = ("resources",)
RESOURCES_KEYS = ("limits", "reservations")
LIMITS_KEYS = ("memory", "cpus", "pids")
RESERVATIONS_KEYS = ("memory",)
ENV_FILE_KEYS = ("path", "required")
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# Settings the engine rejects beside `network_mode: container:NAME` (they belong to the
# other container's network namespace).
_CONFLICTS_WITH_CONTAINER_MODE = (
    "hostname", "domainname", "mac_address", "dns", "dns_search", "dns_opt", "extra_hosts", "ports", "expose",
)


def plan_service(
    service: Mapping[str, Any],
    *,
    name: str | None,
    image: str | None,
    project: str | None = None,
    service_name: str | None = None,
    base_dir: Path | None = None,
    field_prefix: str = "spec",
    top_level_networks: Mapping[str, Any] | None = None,
    top_level_volumes: Mapping[str, Any] | None = None,
) -> ContainerPlan:
    """Build the plan of one Compose service.

    `name` and `image` (the row's `container` and `image` columns) take precedence over the
    spec's `container_name` and `image`. Setting `project` selects compose-file semantics,
    and `service_name` is then required. These semantics are the `PROJECT-SERVICE-1` default
    name, the Compose labels, the `PROJECT_default` network, and `PROJECT_`-prefixed network
    and volume names from `top_level_networks` and `top_level_volumes`. Relative paths (bind
    sources, env files) resolve against `base_dir`.

    Raises `SpecError` for an unsupported key or an invalid value, naming its path.
    """
    if not isinstance(service, Mapping):
        raise SpecError(field_prefix, f"expected a mapping of Compose service keys, got {describe(service)}")
    if project is not None and not service_name:
        raise SpecError(f"{field_prefix}.service", "missing: a compose project needs the service name")
    _reject_unsupported_keys(service, field_prefix)

    builder = _Builder(
        prefix=field_prefix,
        base_dir=base_dir,
        resources=Resources(
            project=project, networks=dict(top_level_networks or {}), volumes=dict(top_level_volumes or {})
        ),
    )
    for key, value in service.items():
        if key.startswith("x-"):
            continue
        _HANDLERS[key](builder, value, f"{field_prefix}.{key}")

    builder.finish_environment()
    builder.finish_storage()
    connect = builder.finish_networks(service, project=project, service_name=service_name)

    image_ref = _choose_image(image, builder)
    container_name = _choose_name(name, builder, project=project, service_name=service_name, prefix=field_prefix)
    labels = builder.labels
    if project is not None and service_name:
        labels[LABEL_PROJECT] = project
        labels[LABEL_SERVICE] = service_name
        labels[LABEL_CONTAINER_NUMBER] = "1"
        labels[LABEL_ONEOFF] = "False"
    labels[LABEL_CREATED_BY] = CREATED_BY_VALUE

    body = {"Image": image_ref, **builder.config, "Labels": labels, "HostConfig": builder.host}
    if builder.endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": builder.endpoints}

    plan = ContainerPlan(
        name=container_name,
        image=image_ref,
        body=body,
        connect=tuple(connect),
        networks=tuple(builder.resources.network_requests.values()),
        volumes=tuple(builder.resources.volume_requests.values()),
        pull_policy=builder.pull_policy,
    )
    labels[LABEL_SPEC_HASH] = spec_hash(plan)
    return plan


def plan_compose_service(compose: ComposeService, *, name: str | None, image: str | None) -> ContainerPlan:
    """Build the plan of a service loaded from a compose file, with the file's semantics."""
    return plan_service(
        compose.mapping,
        name=name,
        image=image,
        project=compose.project,
        service_name=compose.service_name,
        base_dir=compose.base_dir,
        field_prefix=f"services.{compose.service_name}",
        top_level_networks=compose.networks,
        top_level_volumes=compose.volumes,
    )


class _Builder:
    """The parts of the create body while the service's keys are read."""

    def __init__(self, *, prefix: str, base_dir: Path | None, resources: Resources) -> None:
        self.prefix = prefix
        self.base_dir = base_dir
        self.resources = resources
        self.config: dict[str, Any] = {}
        self.host: dict[str, Any] = {}
        self.labels: dict[str, str] = {}
        self.endpoints: dict[str, Any] = {}
        self.environment: dict[str, str | None] = {}
        self.env_file_entries: dict[str, str] = {}
        self.exposed: dict[str, dict[str, Any]] = {}
        self.storage = StorageConfig()
        self.spec_image: str | None = None
        self.spec_container_name: str | None = None
        self.pull_policy: str | None = None
        self.network_mode: str | None = None
        self.network_entries: list[Any] | None = None
        self.networks_path = ""

    def finish_environment(self) -> None:
        """Merge env_file entries and `environment` (which wins) into `Env`."""
        merged: dict[str, str] = dict(self.env_file_entries)
        for key, value in self.environment.items():
            if value is None:
                # Loading a compose file fills a name without a value from the environment.
                # In an inline spec no environment applies, so the name is left out.
                continue
            merged[key] = value
        if merged:
            self.config["Env"] = [f"{key}={value}" for key, value in merged.items()]

    def finish_storage(self) -> None:
        storage = self.storage
        if storage.binds:
            self.host["Binds"] = storage.binds
        if storage.mounts:
            self.host["Mounts"] = storage.mounts
        if storage.anonymous:
            self.config["Volumes"] = storage.anonymous
        if storage.tmpfs:
            self.host["Tmpfs"] = storage.tmpfs
        if self.exposed:
            self.config["ExposedPorts"] = self.exposed

    def finish_networks(self, service: Mapping[str, Any], *, project: str | None, service_name: str | None) -> list[Any]:
        """Set `NetworkMode` and the first endpoint; return the attachments to connect later."""
        if self.network_mode is not None:
            if self.network_entries is not None:
                raise SpecError(
                    self.networks_path, "network_mode and networks exclude each other; remove one of them"
                )
            if self.network_mode.startswith("container:"):
                for key in _CONFLICTS_WITH_CONTAINER_MODE:
                    if key in service:
                        raise SpecError(
                            f"{self.prefix}.{key}",
                            f"not allowed with network_mode {self.network_mode!r}: the container shares "
                            "the network namespace of that container; remove it",
                        )
            self.host["NetworkMode"] = self.network_mode
            return []

        entries = self.network_entries
        if entries is None:
            if project is None:
                return []
            entries = parse_service_networks(["default"], f"{self.prefix}.networks")

        # Compose makes each service reachable by its name on every network it joins.
        extra_aliases = (service_name,) if project is not None and service_name else ()
        attachments = []
        for entry in entries:
            network_name = self.resources.resolve_network(entry.key, entry.path)
            attachments.append(attachment_for(entry, network_name, extra_aliases=extra_aliases))
        if not attachments:
            return []

        first = attachments[0]
        self.host["NetworkMode"] = first.name
        self.endpoints[first.name] = first.endpoint_config()
        if first.mac_address:
            # NOTE: Engine API 1.41 reads the MAC address from the container config and
            # ignores EndpointSettings.MacAddress, so only the first network can set it.
            existing = self.config.get("MacAddress")
            if existing and existing != first.mac_address:
                raise SpecError(
                    f"{self.prefix}.mac_address",
                    f"{existing!r} differs from the first network's mac_address {first.mac_address!r}; keep one",
                )
            self.config["MacAddress"] = first.mac_address
        return attachments[1:]


# --- one handler per key -------------------------------------------------------------------

Handler = Callable[[_Builder, Any, str], None]


def _image(builder: _Builder, value: Any, path: str) -> None:
    text = as_str(value, path)
    if any(character.isspace() for character in text):
        raise SpecError(path, f"invalid image reference {text!r}: it contains whitespace")
    builder.spec_image = text


def _container_name(builder: _Builder, value: Any, path: str) -> None:
    builder.spec_container_name = _check_container_name(as_str(value, path), path)


def _command(builder: _Builder, value: Any, path: str) -> None:
    if value is None:
        return
    builder.config["Cmd"] = _split_command(value, path)


def _entrypoint(builder: _Builder, value: Any, path: str) -> None:
    if value is None:
        return
    entrypoint = _split_command(value, path)
    # An empty entrypoint clears the image's entrypoint. The engine reads that from [""],
    # which is what the docker CLI sends for `--entrypoint ""`.
    builder.config["Entrypoint"] = entrypoint or [""]


def _environment(builder: _Builder, value: Any, path: str) -> None:
    builder.environment = list_or_mapping(value, path)


def _env_file(builder: _Builder, value: Any, path: str) -> None:
    items = [value] if isinstance(value, (str, Mapping)) else as_list(value, path, hint='".env" or [".env", {path: extra.env, required: false}]')
    for index, item in enumerate(items):
        item_path = path if items is not value else f"{path}[{index}]"
        required = True
        if isinstance(item, Mapping):
            check_keys(item, item_path, ENV_FILE_KEYS)
            if "path" not in item:
                raise SpecError(f"{item_path}.path", "missing: the env file's path")
            file_text = as_str(item["path"], f"{item_path}.path")
            required = as_bool(item.get("required", True), f"{item_path}.required")
        else:
            file_text = as_str(item, item_path)

        if "\x00" in file_text:
            raise SpecError(item_path, f"invalid env_file path {file_text!r}: it contains a NUL character")
        file_path = Path(file_text).expanduser()
        if not file_path.is_absolute():
            if builder.base_dir is None:
                raise SpecError(item_path, f"relative env_file {file_text!r} needs a compose file to resolve against; use an absolute path")
            file_path = builder.base_dir / file_path
        if not required and not file_path.exists():
            continue
        for key, entry_value in read_env_file(file_path, field=item_path):
            # NOTE: Compose fills a bare NAME line from the environment. The parser has no
            # environment here, so such a line is left out.
            if entry_value is not None:
                builder.env_file_entries[key] = entry_value


def _ports(builder: _Builder, value: Any, path: str) -> None:
    entries = as_list(value, path, hint='["127.0.0.1:18080:8080", "53:53/udp"]')
    bindings = builder.host.setdefault("PortBindings", {})
    for index, entry in enumerate(entries):
        for binding in parse_port_entry(entry, f"{path}[{index}]"):
            builder.exposed[binding.container_port] = {}
            bindings.setdefault(binding.container_port, []).append(
                {"HostIp": binding.host_ip, "HostPort": binding.host_port}
            )


def _expose(builder: _Builder, value: Any, path: str) -> None:
    entries = as_list(value, path, hint='["8080", "9000/udp"]')
    for index, entry in enumerate(entries):
        for port in parse_expose_entry(entry, f"{path}[{index}]"):
            builder.exposed[port] = {}


def _volumes(builder: _Builder, value: Any, path: str) -> None:
    parse_volumes(value, path, storage=builder.storage, base_dir=builder.base_dir, resolve_volume=builder.resources.resolve_volume)


def _tmpfs(builder: _Builder, value: Any, path: str) -> None:
    parse_tmpfs(value, path, storage=builder.storage)


def _devices(builder: _Builder, value: Any, path: str) -> None:
    builder.host["Devices"] = parse_devices(value, path)


def _networks(builder: _Builder, value: Any, path: str) -> None:
    builder.network_entries = parse_service_networks(value, path)
    builder.networks_path = path


def _network_mode(builder: _Builder, value: Any, path: str) -> None:
    mode = as_str(value, path)
    if mode.startswith("service:"):
        raise SpecError(
            path,
            f"{mode!r} needs a compose file that defines that service; in an inline spec use container:NAME",
        )
    if mode.startswith("container:"):
        _check_container_name(mode[len("container:") :], path)
    elif mode not in ("host", "none", "bridge", "default"):
        raise SpecError(path, f"invalid network_mode {mode!r}: expected {NETWORK_MODE_HINT}; use networks to join a named network")
    builder.network_mode = mode
    builder.networks_path = path


def _labels(builder: _Builder, value: Any, path: str) -> None:
    builder.labels = {key: item if item is not None else "" for key, item in list_or_mapping(value, path).items()}


def _restart(builder: _Builder, value: Any, path: str) -> None:
    text = as_str(value, path)
    policy, _, count = text.partition(":")
    if policy not in RESTART_POLICIES or (count and policy != "on-failure"):
        raise SpecError(path, f"invalid restart policy {text!r}: expected no, always, on-failure, on-failure:N or unless-stopped")
    restart: dict[str, Any] = {"Name": policy}
    if count:
        restart["MaximumRetryCount"] = as_int(count, path, minimum=0)
    builder.host["RestartPolicy"] = restart


def _healthcheck(builder: _Builder, value: Any, path: str) -> None:
    settings = as_mapping(value, path, hint='{test: ["CMD", "true"], interval: 10s}')
    check_keys(settings, path, HEALTHCHECK_KEYS)
    disabled = as_bool(settings.get("disable", False), f"{path}.disable")
    if disabled:
        if settings.get("test") not in (None, ["NONE"], "NONE"):
            raise SpecError(f"{path}.test", "not allowed with disable: true; remove one of them")
        builder.config["Healthcheck"] = {"Test": ["NONE"]}
        return

    healthcheck: dict[str, Any] = {}
    if settings.get("test") is not None:
        healthcheck["Test"] = _healthcheck_test(settings["test"], f"{path}.test")
    for key, api_key in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if settings.get(key) is not None:
            healthcheck[api_key] = parse_duration(settings[key], field=f"{path}.{key}")
    if settings.get("retries") is not None:
        healthcheck["Retries"] = as_int(settings["retries"], f"{path}.retries", minimum=0)
    builder.config["Healthcheck"] = healthcheck


def _extra_hosts(builder: _Builder, value: Any, path: str) -> None:
    hosts = []
    if isinstance(value, Mapping):
        for host, address in value.items():
            hosts.append(_extra_host(str(host), scalar_text(address, f"{path}.{host}"), f"{path}.{host}", f"{host}: {address}"))
    else:
        for index, entry in enumerate(as_list(value, path, hint='["db.local:10.0.0.5"] or {db.local: 10.0.0.5}')):
            entry_path = f"{path}[{index}]"
            text = as_str(entry, entry_path)
            separator = "=" if "=" in text else ":"
            host, _, address = text.partition(separator)
            hosts.append(_extra_host(host, address, entry_path, text))
    builder.host["ExtraHosts"] = hosts


def _ulimits(builder: _Builder, value: Any, path: str) -> None:
    limits = []
    for name, limit in as_mapping(value, path, hint="{nofile: {soft: 1024, hard: 4096}, nproc: 512}").items():
        limit_path = f"{path}.{name}"
        if isinstance(limit, Mapping):
            check_keys(limit, limit_path, ("soft", "hard"))
            if "soft" not in limit or "hard" not in limit:
                raise SpecError(limit_path, "expected both soft and hard, or a single integer for both")
            soft = as_int(limit["soft"], f"{limit_path}.soft", minimum=-1)
            hard = as_int(limit["hard"], f"{limit_path}.hard", minimum=-1)
            if hard != -1 and (soft == -1 or soft > hard):
                raise SpecError(limit_path, f"soft limit {soft} exceeds hard limit {hard}")
        else:
            soft = hard = as_int(limit, limit_path, minimum=-1)
        limits.append({"Name": str(name), "Soft": soft, "Hard": hard})
    builder.host["Ulimits"] = limits


def _stop_grace_period(builder: _Builder, value: Any, path: str) -> None:
    nanoseconds = parse_duration(value, field=path)
    # The engine counts whole seconds; rounding up never shortens the grace period.
    builder.config["StopTimeout"] = math.ceil(nanoseconds / 1_000_000_000)


def _memswap_limit(builder: _Builder, value: Any, path: str) -> None:
    if value in (-1, "-1"):
        builder.host["MemorySwap"] = -1
        return
    builder.host["MemorySwap"] = parse_bytes(value, field=path)


def _cpus(builder: _Builder, value: Any, path: str) -> None:
    _set_once(builder, "NanoCpus", as_nano_cpus(value, path), path, None)


def _logging(builder: _Builder, value: Any, path: str) -> None:
    settings = as_mapping(value, path, hint='{driver: json-file, options: {max-size: "10m"}}')
    check_keys(settings, path, LOGGING_KEYS)
    driver = "" if settings.get("driver") is None else as_str(settings["driver"], f"{path}.driver")
    options = optional_mapping(settings.get("options"), f"{path}.options")
    builder.host["LogConfig"] = {
        "Type": driver,
        "Config": {str(key): scalar_text(item, f"{path}.options.{key}") for key, item in options.items()},
    }


def _sysctls(builder: _Builder, value: Any, path: str) -> None:
    sysctls = list_or_mapping(value, path)
    for key, item in sysctls.items():
        if item is None:
            raise SpecError(f"{path}.{key}", f"sysctl {key} has no value: expected {key}=VALUE")
    builder.host["Sysctls"] = sysctls


def _group_add(builder: _Builder, value: Any, path: str) -> None:
    builder.host["GroupAdd"] = as_str_list(value, path, allow_int=True)


def _pull_policy(builder: _Builder, value: Any, path: str) -> None:
    text = as_str(value, path)
    if text not in PULL_POLICIES:
        raise SpecError(path, f"unsupported pull_policy {text!r}: expected always, never, missing or if_not_present")
    builder.pull_policy = PULL_POLICIES[text]


def _platform(builder: _Builder, value: Any, path: str) -> None:
    # TODO: support once ContainerPlan carries a platform for the create call's `platform`
    # query parameter (Engine API 1.41); until then a plan could not honour it.
    raise SpecError(path, f"platform {value!r} is not supported yet; remove it and use an image built for the engine's platform")


def _deploy(builder: _Builder, value: Any, path: str) -> None:
    deploy = as_mapping(value, path, hint="{resources: {limits: {memory: 512m, cpus: 0.5}}}")
    check_keys(deploy, path, DEPLOY_KEYS)
    resources = optional_mapping(deploy.get("resources"), f"{path}.resources")
    check_keys(resources, f"{path}.resources", RESOURCES_KEYS)

    limits = optional_mapping(resources.get("limits"), f"{path}.resources.limits")
    check_keys(limits, f"{path}.resources.limits", LIMITS_KEYS)
    limits_path = f"{path}.resources.limits"
    if limits.get("memory") is not None:
        _set_once(builder, "Memory", parse_bytes(limits["memory"], field=f"{limits_path}.memory"), f"{limits_path}.memory", "mem_limit")
    if limits.get("cpus") is not None:
        nano_cpus = as_nano_cpus(limits["cpus"], f"{limits_path}.cpus")
        _set_once(builder, "NanoCpus", nano_cpus, f"{limits_path}.cpus", "cpus")
    if limits.get("pids") is not None:
        _set_once(builder, "PidsLimit", as_int(limits["pids"], f"{limits_path}.pids", minimum=-1), f"{limits_path}.pids", "pids_limit")

    reservations = optional_mapping(resources.get("reservations"), f"{path}.resources.reservations")
    check_keys(reservations, f"{path}.resources.reservations", RESERVATIONS_KEYS)
    if reservations.get("memory") is not None:
        reservation_path = f"{path}.resources.reservations.memory"
        _set_once(builder, "MemoryReservation", parse_bytes(reservations["memory"], field=reservation_path), reservation_path, "mem_reservation")


def _make_config_string(api_key: str) -> Handler:
    def handle(builder: _Builder, value: Any, path: str) -> None:
        builder.config[api_key] = as_str(value, path, allow_int=api_key == "User")

    return handle


def _make_config_bool(api_key: str) -> Handler:
    def handle(builder: _Builder, value: Any, path: str) -> None:
        builder.config[api_key] = as_bool(value, path)

    return handle


def _make_host(api_key: str, convert: Callable[[Any, str], Any]) -> Handler:
    def handle(builder: _Builder, value: Any, path: str) -> None:
        _set_once(builder, api_key, convert(value, path), path, None)

    return handle


_HANDLERS: dict[str, Handler] = {
    "image": _image,
    "container_name": _container_name,
    "command": _command,
    "entrypoint": _entrypoint,
    "environment": _environment,
    "env_file": _env_file,
    "ports": _ports,
    "expose": _expose,
    "volumes": _volumes,
    "tmpfs": _tmpfs,
    "devices": _devices,
    "networks": _networks,
    "network_mode": _network_mode,
    "labels": _labels,
    "restart": _restart,
    "healthcheck": _healthcheck,
    "extra_hosts": _extra_hosts,
    "ulimits": _ulimits,
    "stop_grace_period": _stop_grace_period,
    "memswap_limit": _memswap_limit,
    "cpus": _cpus,
    "logging": _logging,
    "sysctls": _sysctls,
    "group_add": _group_add,
    "pull_policy": _pull_policy,
    "platform": _platform,
    "deploy": _deploy,
}
_HANDLERS.update({key: _make_config_string(api_key) for key, api_key in _CONFIG_STRINGS.items()})
_HANDLERS.update({key: _make_config_bool(api_key) for key, api_key in _CONFIG_BOOLS.items()})
_HANDLERS.update({key: _make_host(api_key, lambda value, path: as_str(value, path)) for key, api_key in _HOST_STRINGS.items()})
_HANDLERS.update({key: _make_host(api_key, as_bool) for key, api_key in _HOST_BOOLS.items()})
_HANDLERS.update({key: _make_host(api_key, as_str_list) for key, api_key in _HOST_STRING_LISTS.items()})
_HANDLERS.update(
    {
        key: _make_host(api_key, lambda value, path: as_str_list(value, path, allow_single=True))
        for key, api_key in _HOST_STRING_OR_LISTS.items()
    }
)
_HANDLERS.update(
    {
        key: _make_host(api_key, lambda value, path, minimum=minimum: as_int(value, path, minimum=minimum))
        for key, (api_key, minimum) in _HOST_INTS.items()
    }
)
_HANDLERS.update(
    {key: _make_host(api_key, lambda value, path: parse_bytes(value, field=path)) for key, api_key in _HOST_BYTES.items()}
)

SUPPORTED_KEYS = tuple(sorted(_HANDLERS))


# --- helpers -------------------------------------------------------------------------------


def _reject_unsupported_keys(service: Mapping[str, Any], prefix: str) -> None:
    for key in service:
        if not isinstance(key, str):
            raise SpecError(prefix, f"invalid key {describe(key)}: service keys are strings")
        if key.startswith("x-"):
            # Compose reserves x- keys for extensions that tools other than the engine read.
            continue
        if key not in _HANDLERS:
            raise SpecError(f"{prefix}.{key}", f"unsupported key; supported keys are: {', '.join(sorted(_HANDLERS))}")


def _split_command(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as error:
            raise SpecError(path, f"cannot split {value!r} like a shell does ({error}); write it as a list of arguments") from None
    items = as_list(value, path, hint='"npm start" or ["npm", "start"]')
    return [scalar_text(item, f"{path}[{index}]") for index, item in enumerate(items)]


def _healthcheck_test(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        if value == "NONE":
            return ["NONE"]
        return ["CMD-SHELL", value]
    test = as_str_list(value, path)
    if not test or test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise SpecError(path, f'invalid test {test!r}: a list must start with "CMD", "CMD-SHELL" or "NONE"')
    if test[0] != "NONE" and len(test) == 1:
        raise SpecError(path, f"invalid test {test!r}: {test[0]} needs a command after it")
    return test


def _extra_host(host: str, address: str, path: str, entry: str) -> str:
    host = host.strip()
    address = address.strip().removeprefix("[").removesuffix("]")
    if not host or not address:
        raise SpecError(path, f'invalid extra host {entry!r}: expected "HOST:IP" or "HOST=IP"')
    return f"{host}:{address}"


def _set_once(builder: _Builder, api_key: str, value: Any, path: str, other_key: str | None) -> None:
    """Set a host config field, rejecting a second, different value from another key."""
    existing = builder.host.get(api_key)
    if existing is not None and existing != value:
        other = f" (also set by {other_key})" if other_key else ""
        raise SpecError(path, f"{value!r} conflicts with {existing!r}{other}; keep one of them")
    builder.host[api_key] = value


def _check_container_name(name: str, path: str) -> str:
    if not CONTAINER_NAME.match(name):
        raise SpecError(path, f"invalid container name {name!r}: expected [a-zA-Z0-9][a-zA-Z0-9_.-]+")
    return name


def _choose_image(image: str | None, builder: _Builder) -> str:
    if image:
        return image
    if builder.spec_image:
        return builder.spec_image
    raise SpecError("image", f"missing: set the image column or {builder.prefix}.image")


def _choose_name(name: str | None, builder: _Builder, *, project: str | None, service_name: str | None, prefix: str) -> str:
    if name:
        return _check_container_name(name, "container")
    if builder.spec_container_name:
        return builder.spec_container_name
    if project is not None and service_name:
        return _check_container_name(default_container_name(project, service_name), f"{prefix}")
    raise SpecError("container", f"missing: set the container column or {prefix}.container_name")
