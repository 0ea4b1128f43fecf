"""The docker CLI command equivalent to each Docker call, for operation logs (`details.cli`).

Renderings are shell-quoted with `shlex`, so they can be pasted into a shell. Secret
environment values and secret-named labels appear as `***`, and no renderer prints registry
credentials. `render_create` works from the Engine API create body, so it renders plans from
both the Compose parser and the recreate carry-over rules.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

from controller.specs.plan import ContainerPlan, NetworkAttachment, NetworkRequest, VolumeRequest
from controller.specs.redact import MASK, is_secret_name, redact_env_entry, scrub, secret_values
from controller.specs.units import format_duration

# Arguments of `render_command` whose following value is a credential.
_CREDENTIAL_FLAGS = ("--password", "--registry-token", "--identity-token")


def render_command(*argv: str) -> str:
    """Shell-quote a command line, masking the values of credential flags such as --password."""
    masked: list[str] = []
    hide_next = False
    for argument in argv:
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        flag, separator, _ = argument.partition("=")
        if flag in _CREDENTIAL_FLAGS:
            if separator:
                masked.append(f"{flag}={MASK}")
            else:
                masked.append(argument)
                hide_next = True
            continue
        masked.append(argument)
    return shlex.join(masked)


def render_create(plan: ContainerPlan) -> str:
    """Render `docker create` with the flags that produce the plan's create body.

    The CLI takes one `--entrypoint` word, so the rest of a longer entrypoint goes before the
    command arguments, which is how the engine joins them anyway.
    NOTE: body keys without a flag in this renderer (for example ones a recreate copies from
    an inspect output) are left out of the rendering, never out of the create call.
    """
    body = plan.body
    host = body.get("HostConfig") or {}
    argv = ["docker", "create", "--name", plan.name]
    if plan.pull_policy:
        argv += ["--pull", plan.pull_policy]

    argv += _config_flags(body)
    argv += _host_flags(host)
    argv += _network_flags(body, host)

    entrypoint = body.get("Entrypoint")
    trailing: list[str] = []
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
        trailing = list(entrypoint[1:])
    trailing += list(body.get("Cmd") or [])

    argv.append(body.get("Image") or plan.image)
    argv += trailing
    # A secret value can also sit in the command (`--db-password=...`); mask it wherever it is.
    secrets = [shlex.quote(value) for value in secret_values(body.get("Env"))] + secret_values(body.get("Env"))
    return scrub(shlex.join(argv), secrets)


def render_network_connect(network: str, container: str, attachment: NetworkAttachment) -> str:
    """Render `docker network connect` with the attachment's aliases and addresses."""
    argv = ["docker", "network", "connect"]
    for alias in attachment.aliases:
        argv += ["--alias", alias]
    if attachment.ipv4_address:
        argv += ["--ip", attachment.ipv4_address]
    if attachment.ipv6_address:
        argv += ["--ip6", attachment.ipv6_address]
    for key, value in (attachment.extra.get("DriverOpts") or {}).items():
        argv += ["--driver-opt", f"{key}={value}"]
    argv += [network, container]
    return shlex.join(argv)


def render_network_create(request: NetworkRequest) -> str:
    """Render `docker network create` for a network request."""
    argv = ["docker", "network", "create"]
    if request.driver:
        argv += ["--driver", request.driver]
    argv += _pairs("--opt", request.driver_opts)

    ipam = request.ipam or {}
    if ipam.get("Driver"):
        argv += ["--ipam-driver", ipam["Driver"]]
    for pool in ipam.get("Config") or []:
        for api_key, flag in (("Subnet", "--subnet"), ("IPRange", "--ip-range"), ("Gateway", "--gateway")):
            if pool.get(api_key):
                argv += [flag, pool[api_key]]
        argv += _pairs("--aux-address", pool.get("AuxiliaryAddresses") or {})
    argv += _pairs("--ipam-opt", ipam.get("Options") or {})

    if request.internal:
        argv.append("--internal")
    if request.attachable:
        argv.append("--attachable")
    if request.enable_ipv6:
        argv.append("--ipv6")
    argv += _labels(request.labels)
    argv.append(request.name)
    return shlex.join(argv)


def render_volume_create(request: VolumeRequest) -> str:
    """Render `docker volume create` for a volume request."""
    argv = ["docker", "volume", "create"]
    if request.driver:
        argv += ["--driver", request.driver]
    argv += _pairs("--opt", request.driver_opts)
    argv += _labels(request.labels)
    argv.append(request.name)
    return shlex.join(argv)


def _config_flags(body: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for entry in body.get("Env") or []:
        argv += ["-e", redact_env_entry(entry)]
    argv += _labels(body.get("Labels") or {})
    published = (body.get("HostConfig") or {}).get("PortBindings") or {}
    for port in body.get("ExposedPorts") or {}:
        if port not in published:
            argv += ["--expose", port]
    for target in body.get("Volumes") or {}:
        argv += ["-v", target]

    for api_key, flag in (
        ("User", "--user"),
        ("WorkingDir", "--workdir"),
        ("Hostname", "--hostname"),
        ("Domainname", "--domainname"),
        ("StopSignal", "--stop-signal"),
        ("MacAddress", "--mac-address"),
    ):
        if body.get(api_key):
            argv += [flag, str(body[api_key])]
    if body.get("StopTimeout") is not None:
        argv += ["--stop-timeout", str(body["StopTimeout"])]
    if body.get("Tty"):
        argv.append("--tty")
    if body.get("OpenStdin"):
        argv.append("--interactive")

    argv += _healthcheck_flags(body.get("Healthcheck"))
    return argv


def _healthcheck_flags(healthcheck: dict[str, Any] | None) -> list[str]:
    if not healthcheck:
        return []
    test = healthcheck.get("Test") or []
    if test[:1] == ["NONE"]:
        return ["--no-healthcheck"]

    argv: list[str] = []
    if test[:1] == ["CMD-SHELL"]:
        argv += ["--health-cmd", " ".join(test[1:])]
    elif test[:1] == ["CMD"]:
        # NOTE: --health-cmd always runs through a shell, so an exec-form test renders as
        # its quoted words; the engine runs the real body's exec form.
        argv += ["--health-cmd", shlex.join(test[1:])]
    for api_key, flag in (("Interval", "--health-interval"), ("Timeout", "--health-timeout"), ("StartPeriod", "--health-start-period")):
        if healthcheck.get(api_key):
            argv += [flag, format_duration(healthcheck[api_key])]
    if healthcheck.get("Retries"):
        argv += ["--health-retries", str(healthcheck["Retries"])]
    return argv


def _host_flags(host: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for container_port, bindings in (host.get("PortBindings") or {}).items():
        for binding in bindings or [{}]:
            argv += ["-p", _port_flag(container_port, binding)]
    for bind in host.get("Binds") or []:
        argv += ["-v", bind]
    for mount in host.get("Mounts") or []:
        argv += ["--mount", _mount_flag(mount)]
    for target, options in (host.get("Tmpfs") or {}).items():
        argv += ["--tmpfs", f"{target}:{options}" if options else target]

    restart = host.get("RestartPolicy") or {}
    if restart.get("Name"):
        count = restart.get("MaximumRetryCount")
        argv += ["--restart", f"{restart['Name']}:{count}" if count else restart["Name"]]

    for api_key, flag in (
        ("CapAdd", "--cap-add"),
        ("CapDrop", "--cap-drop"),
        ("SecurityOpt", "--security-opt"),
        ("Dns", "--dns"),
        ("DnsSearch", "--dns-search"),
        ("DnsOptions", "--dns-option"),
        ("ExtraHosts", "--add-host"),
        ("GroupAdd", "--group-add"),
    ):
        for item in host.get(api_key) or []:
            argv += [flag, str(item)]
    for device in host.get("Devices") or []:
        argv += ["--device", f"{device['PathOnHost']}:{device['PathInContainer']}:{device.get('CgroupPermissions') or 'rwm'}"]
    for limit in host.get("Ulimits") or []:
        argv += ["--ulimit", f"{limit['Name']}={limit['Soft']}:{limit['Hard']}"]
    for key, value in (host.get("Sysctls") or {}).items():
        argv += ["--sysctl", f"{key}={value}"]

    for api_key, flag in (
        ("Memory", "--memory"),
        ("MemorySwap", "--memory-swap"),
        ("MemoryReservation", "--memory-reservation"),
        ("ShmSize", "--shm-size"),
        ("CpuShares", "--cpu-shares"),
        ("CpuQuota", "--cpu-quota"),
        ("CpuPeriod", "--cpu-period"),
        ("CpusetCpus", "--cpuset-cpus"),
        ("PidsLimit", "--pids-limit"),
        ("OomScoreAdj", "--oom-score-adj"),
        ("IpcMode", "--ipc"),
        ("PidMode", "--pid"),
        ("UsernsMode", "--userns"),
        ("CgroupParent", "--cgroup-parent"),
        ("Runtime", "--runtime"),
    ):
        if host.get(api_key):
            argv += [flag, str(host[api_key])]
    if host.get("NanoCpus"):
        argv += ["--cpus", _format_cpus(host["NanoCpus"])]

    log_config = host.get("LogConfig") or {}
    if log_config.get("Type"):
        argv += ["--log-driver", log_config["Type"]]
    for key, value in (log_config.get("Config") or {}).items():
        argv += ["--log-opt", f"{key}={MASK if is_secret_name(key) else value}"]

    for api_key, flag in (
        ("ReadonlyRootfs", "--read-only"),
        ("Init", "--init"),
        ("Privileged", "--privileged"),
        ("OomKillDisable", "--oom-kill-disable"),
        ("AutoRemove", "--rm"),
    ):
        if host.get(api_key):
            argv.append(flag)
    return argv


def _network_flags(body: dict[str, Any], host: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    if host.get("NetworkMode"):
        argv += ["--network", host["NetworkMode"]]
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    for endpoint in endpoints.values():
        for alias in endpoint.get("Aliases") or []:
            argv += ["--network-alias", alias]
        ipam = endpoint.get("IPAMConfig") or {}
        if ipam.get("IPv4Address"):
            argv += ["--ip", ipam["IPv4Address"]]
        if ipam.get("IPv6Address"):
            argv += ["--ip6", ipam["IPv6Address"]]
    return argv


def _port_flag(container_port: str, binding: dict[str, Any]) -> str:
    port, _, protocol = container_port.partition("/")
    host_ip = binding.get("HostIp") or ""
    host_port = binding.get("HostPort") or ""
    if ":" in host_ip:
        host_ip = f"[{host_ip}]"
    suffix = f"/{protocol}" if protocol and protocol != "tcp" else ""
    if host_ip:
        return f"{host_ip}:{host_port}:{port}{suffix}"
    if host_port:
        return f"{host_port}:{port}{suffix}"
    return f"{port}{suffix}"


def _mount_flag(mount: dict[str, Any]) -> str:
    fields = [f"type={mount['Type']}"]
    if mount.get("Source"):
        fields.append(f"source={mount['Source']}")
    fields.append(f"target={mount['Target']}")
    if mount.get("ReadOnly"):
        fields.append("readonly")
    if (mount.get("VolumeOptions") or {}).get("NoCopy"):
        fields.append("volume-nocopy")
    propagation = (mount.get("BindOptions") or {}).get("Propagation")
    if propagation:
        fields.append(f"bind-propagation={propagation}")
    tmpfs = mount.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        fields.append(f"tmpfs-size={tmpfs['SizeBytes']}")
    if tmpfs.get("Mode"):
        fields.append(f"tmpfs-mode={tmpfs['Mode']:o}")
    return ",".join(fields)


def _format_cpus(nano_cpus: int) -> str:
    text = f"{nano_cpus / 1_000_000_000:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _labels(labels: dict[str, str]) -> list[str]:
    argv: list[str] = []
    for key, value in labels.items():
        argv += ["--label", f"{key}={MASK if is_secret_name(key) else value}"]
    return argv


def _pairs(flag: str, values: dict[str, Any]) -> Iterable[str]:
    argv: list[str] = []
    for key, value in values.items():
        argv += [flag, f"{key}={value}"]
    return argv
