"""Recreate carry-over rules: the create request for the container that replaces another one.

A pure layer under the `recreate` operation. Its input is `docker inspect` output (engine
20.10, API 1.41) of the running container, of the image it was created from and of the new image.
It builds a `ContainerPlan` that keeps everything the user configured and lets the new image's
defaults apply to everything else. Networks are decided in `carryover_network`.

At create the engine fills a container's config with its image's defaults: image Env entries and
Labels whose key the user did not set, ExposedPorts and Volumes, Cmd and Entrypoint when the user
set no Entrypoint, and Healthcheck, User, WorkingDir and StopSignal when the user left them
empty. So a container value that equals the old image's value counts as the image's default,
and a different one as the user's. A user who explicitly set a value equal to the image's
default cannot be told apart from one who did not, and that value follows the new image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.specs.carryover_network import NetworkCarryOver, plan_networks
from controller.specs.plan import LABEL_SPEC_HASH, ContainerPlan

# Config fields the engine fills from the image when the container leaves them empty.
# A value different from the old image's is the user's and is kept.
_IMAGE_DEFAULT_FIELDS = ("User", "WorkingDir", "StopSignal", "Shell")

# Config fields that only the container sets, kept as they are.
_CONTAINER_FIELDS = (
    "Domainname",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "NetworkDisabled",
)

# HostConfig fields that the engine or the client fills per container, so they are never sent on create.
_RUNTIME_HOST_FIELDS = ("ContainerIDFile", "ConsoleSize")

# HostConfig fields the engine rejects with a `container:` network mode.
_NAMESPACE_CONFLICT_HOST_FIELDS = (
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "ExtraHosts",
    "PortBindings",
    "PublishAllPorts",
    "Links",
)


def plan_recreate(
    container: Mapping[str, Any],
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any],
    *,
    name: str,
    image_ref: str,
    network_container: str | None = None,
) -> ContainerPlan:
    """Build the plan of the container that replaces `container`, created from `image_ref`.

    `old_image` is the inspect output of the image `container` was created from (None when it
    is gone, in which case values equal to `new_image`'s count as defaults). `name` is the name
    to create under. `network_container` replaces the target of a `container:X` network mode.
    Raises ValueError when `container` is not container inspect output.
    """
    body, network, _notes = _build(container, old_image, new_image, network_container=network_container)
    body["Image"] = image_ref
    return ContainerPlan(name=name, image=image_ref, body=body, connect=network.connect)


def describe_changes(
    container: Mapping[str, Any],
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any],
) -> list[str]:
    """List in words what a recreate carries over and what follows the new image.

    Environment values are never shown, only their keys, because they may hold secrets.
    """
    _body, _network, notes = _build(container, old_image, new_image, network_container=None)
    return notes


def _build(
    container: Mapping[str, Any],
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any],
    *,
    network_container: str | None,
) -> tuple[dict[str, Any], NetworkCarryOver, list[str]]:
    """Build the create body (without Image), the network decision and the notes."""
    config = container.get("Config")
    host_config = container.get("HostConfig")
    if not isinstance(config, Mapping) or not isinstance(host_config, Mapping):
        raise ValueError(
            f"container {container.get('Id', '?')!r}: inspect output has no Config or HostConfig. "
            "Pass the result of APIClient.inspect_container."
        )

    notes: list[str] = []
    baseline = _image_config(old_image)
    if old_image is None:
        baseline = _image_config(new_image)
        notes.append(
            "old image not found: every value that differs from the new image's is kept, "
            "including the old image's own defaults"
        )

    network = plan_networks(container, network_container=network_container)
    body: dict[str, Any] = {}

    # Config: image defaults follow the new image, the user's values are kept.
    _carry_env(body, notes, config, baseline, _image_config(new_image))
    _carry_labels(body, notes, config, baseline)
    _carry_command(body, notes, config, baseline)
    _carry_healthcheck(body, notes, config, baseline)
    _carry_image_default_fields(body, notes, config, baseline)
    _carry_container_fields(body, notes, container, config, shares_namespace=network.shares_namespace)

    # Host config, volumes and ports.
    body["HostConfig"] = _host_config(container, host_config, network, notes)
    if not network.shares_namespace:
        _carry_exposed_ports(body, notes, config, baseline, body["HostConfig"])
    _carry_volumes(body, config, baseline)

    # Networks.
    if network.mac_address:
        body["MacAddress"] = network.mac_address
    create_on = network.create_on
    if create_on is not None and create_on.endpoint_config():
        # An empty entry adds nothing to HostConfig.NetworkMode, so none is sent.
        body["NetworkingConfig"] = {"EndpointsConfig": {create_on.name: create_on.endpoint_config()}}
    notes.extend(network.notes)
    return body, network, notes


def _image_config(image: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return the `Config` of image inspect output, empty when there is no image."""
    if image is None:
        return {}
    return image.get("Config") or {}


def _env_key(entry: str) -> str:
    """Return the variable name of an Env entry (`KEY=VALUE`, or `KEY` alone)."""
    return entry.split("=", 1)[0]


def _carry_env(
    body: dict[str, Any],
    notes: list[str],
    config: Mapping[str, Any],
    baseline: Mapping[str, Any],
    new_image_config: Mapping[str, Any],
) -> None:
    """Keep the Env entries that differ from the old image's, so the others follow the new image.

    An image variable the user removed cannot occur, because the engine always adds the image's
    entries whose key the container does not set (and `docker run` cannot unset a variable).
    """
    image_entries = set(baseline.get("Env") or ())
    kept = [entry for entry in config.get("Env") or () if entry not in image_entries]
    followed = [_env_key(entry) for entry in config.get("Env") or () if entry in image_entries]
    if kept:
        body["Env"] = kept
        notes.append("environment: keeps " + ", ".join(_env_key(entry) for entry in kept))

    if followed:
        new_keys = {_env_key(entry) for entry in new_image_config.get("Env") or ()}
        dropped = [key for key in followed if key not in new_keys]
        notes.append("environment: follows the new image for " + ", ".join(followed))
        if dropped:
            notes.append("environment: the new image no longer sets " + ", ".join(dropped))


def _carry_labels(
    body: dict[str, Any],
    notes: list[str],
    config: Mapping[str, Any],
    baseline: Mapping[str, Any],
) -> None:
    """Keep the labels that differ from the old image's, and the spec-hash label always."""
    image_labels = baseline.get("Labels") or {}
    labels = config.get("Labels") or {}
    missing = object()
    kept = {
        key: value
        for key, value in labels.items()
        if key == LABEL_SPEC_HASH or image_labels.get(key, missing) != value
    }
    followed = [key for key in labels if key not in kept]
    if kept:
        body["Labels"] = kept
        notes.append("labels: keeps " + ", ".join(kept))
    if followed:
        notes.append("labels: follows the new image for " + ", ".join(followed))


def _as_list(value: Any) -> list[str]:
    """Return an Entrypoint or Cmd as a list, and inspect's null as an empty one."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _carry_command(
    body: dict[str, Any],
    notes: list[str],
    config: Mapping[str, Any],
    baseline: Mapping[str, Any],
) -> None:
    """Keep Entrypoint and Cmd where the user overrode them.

    The engine takes the image's Cmd only when the user set no Entrypoint, so a Cmd counts
    as the image's default only when the Entrypoint is the default too.
    """
    entrypoint = _as_list(config.get("Entrypoint"))
    cmd = _as_list(config.get("Cmd"))

    if entrypoint != _as_list(baseline.get("Entrypoint")):
        body["Entrypoint"] = entrypoint
        if cmd:
            body["Cmd"] = cmd
        notes.append(f"command: keeps entrypoint {entrypoint} and command {cmd}")
        return

    if cmd and cmd != _as_list(baseline.get("Cmd")):
        body["Cmd"] = cmd
        notes.append(f"command: keeps command {cmd}; the entrypoint follows the new image")
        return

    notes.append("command: entrypoint and command follow the new image")


def _healthcheck_key(healthcheck: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a healthcheck without its zero fields, which inspect may show or omit."""
    return {key: value for key, value in (healthcheck or {}).items() if value}


def _carry_healthcheck(
    body: dict[str, Any],
    notes: list[str],
    config: Mapping[str, Any],
    baseline: Mapping[str, Any],
) -> None:
    """Keep the healthcheck fields the user set; a disabled one (`Test: ["NONE"]`) stays whole.

    The engine fills each field a container leaves empty from its image, so a container that
    only set `--health-start-period` shows the old image's test command too. Only the fields
    that differ from the old image's are kept; the others follow the new image.
    """
    healthcheck = config.get("Healthcheck")
    if not healthcheck:
        return

    if _as_list(healthcheck.get("Test")) == ["NONE"]:
        body["Healthcheck"] = dict(healthcheck)
        notes.append("healthcheck: stays disabled")
        return

    image_healthcheck = _healthcheck_key(baseline.get("Healthcheck"))
    own = {key: value for key, value in _healthcheck_key(healthcheck).items() if image_healthcheck.get(key) != value}
    if not own:
        notes.append("healthcheck: follows the new image")
        return

    body["Healthcheck"] = own
    if set(own) >= {"Test"}:
        notes.append("healthcheck: keeps the container's own")
    else:
        notes.append(f"healthcheck: keeps the container's {', '.join(sorted(own))}; the rest follows the new image")


def _carry_image_default_fields(
    body: dict[str, Any],
    notes: list[str],
    config: Mapping[str, Any],
    baseline: Mapping[str, Any],
) -> None:
    """Keep User, WorkingDir, StopSignal and Shell where they differ from the old image's."""
    for field in _IMAGE_DEFAULT_FIELDS:
        value = config.get(field)
        if value and value != baseline.get(field):
            body[field] = value
            notes.append(f"config: keeps {field} {value!r}")


def _carry_container_fields(
    body: dict[str, Any],
    notes: list[str],
    container: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    shares_namespace: bool,
) -> None:
    """Keep the fields only the container sets: Hostname if the user set it, stdio, StopTimeout."""
    for field in _CONTAINER_FIELDS:
        if field in config:
            body[field] = config[field]

    if config.get("StopTimeout") is not None:
        body["StopTimeout"] = config["StopTimeout"]
        notes.append(f"config: keeps StopTimeout {config['StopTimeout']} s")

    if shares_namespace:
        # The engine rejects these with a `container:` network mode; the container takes
        # them from the container whose namespace it joins.
        body.pop("Domainname", None)
        return

    # The engine sets the hostname to the container's short id unless the user set one.
    # NOTE: in host network mode the engine sets the host's name, which then counts as
    # user-set and is kept. It goes stale only if the host is renamed.
    hostname = config.get("Hostname")
    if hostname and hostname != str(container.get("Id", ""))[:12]:
        body["Hostname"] = hostname
        notes.append(f"config: keeps hostname {hostname!r}")


def _host_config(
    container: Mapping[str, Any],
    host_config: Mapping[str, Any],
    network: NetworkCarryOver,
    notes: list[str],
) -> dict[str, Any]:
    """Copy HostConfig without runtime fields, re-attaching anonymous volumes by name."""
    result = {key: value for key, value in host_config.items() if key not in _RUNTIME_HOST_FIELDS}
    result["NetworkMode"] = network.network_mode

    if network.shares_namespace:
        for field in _NAMESPACE_CONFLICT_HOST_FIELDS:
            result.pop(field, None)
    elif result.get("Links"):
        result["Links"] = [_create_link(link) for link in result["Links"]]

    binds, mounts = _reattach_volumes(container, host_config, notes)
    result["Binds"] = binds
    if mounts is not None:
        result["Mounts"] = mounts

    bindings = host_config.get("PortBindings") or {}
    if bindings and not network.shares_namespace:
        published = [_describe_binding(port, bindings[port]) for port in bindings]
        notes.append("ports: keeps published ports " + ", ".join(published))
    return result


def _create_link(link: str) -> str:
    """Turn an inspect link (`/db:/web/alias`) into the create form (`db:alias`)."""
    source, separator, target = link.partition(":")
    if not separator:
        return link.lstrip("/")
    return f"{source.lstrip('/')}:{target.rsplit('/', 1)[-1]}"


def _describe_binding(port: str, bindings: Iterable[Mapping[str, Any]] | None) -> str:
    """Describe the host side of a port binding, e.g. `127.0.0.1:18080->5000/tcp`."""
    hosts = [f"{b.get('HostIp') or ''}:{b.get('HostPort') or ''}".lstrip(":") for b in bindings or ()]
    return f"{' '.join(hosts) or 'unbound'}->{port}"


def _bind_destination(bind: str) -> str:
    """Return the container path of a Binds entry (`SOURCE:DEST[:OPTIONS]`, or `DEST` alone)."""
    parts = bind.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _reattach_volumes(
    container: Mapping[str, Any],
    host_config: Mapping[str, Any],
    notes: list[str],
) -> tuple[list[str] | None, list[dict[str, Any]] | None]:
    """Return HostConfig Binds and Mounts in which every volume is named.

    An anonymous volume (from the image's or the container's Config.Volumes, or a volume
    bind or mount without a source) has an engine-generated name, and a new container
    would get a new empty one. Naming it keeps its data.
    """
    volume_names = {
        mount.get("Destination"): mount.get("Name")
        for mount in container.get("Mounts") or ()
        if mount.get("Type") == "volume" and mount.get("Name")
    }

    binds: list[str] | None = None
    if host_config.get("Binds") is not None:
        binds = []
        for bind in host_config["Binds"]:
            if ":" not in bind and bind in volume_names:
                bind = f"{volume_names[bind]}:{bind}"
            binds.append(bind)

    mounts: list[dict[str, Any]] | None = None
    if host_config.get("Mounts") is not None:
        mounts = []
        for mount in host_config["Mounts"]:
            mount = dict(mount)
            if mount.get("Type") == "volume" and not mount.get("Source") and mount.get("Target") in volume_names:
                mount["Source"] = volume_names[mount["Target"]]
            mounts.append(mount)

    declared = {_bind_destination(bind) for bind in binds or ()}
    declared |= {mount.get("Target") for mount in mounts or ()}
    for mount in container.get("Mounts") or ():
        destination = mount.get("Destination")
        if mount.get("Type") != "volume" or not mount.get("Name") or destination in declared:
            continue
        # NOTE: volumes taken over with VolumesFrom also land here. Binding the same volume
        # at the same path is what VolumesFrom does anyway, so the result is unchanged.
        bind = f"{mount['Name']}:{destination}"
        if mount.get("RW") is False:
            bind += ":ro"
        binds = [*(binds or ()), bind]
        notes.append(f"volumes: keeps the anonymous volume at {destination} ({mount['Name'][:12]})")
    return binds, mounts


def _carry_exposed_ports(
    body: dict[str, Any],
    notes: list[str],
    config: Mapping[str, Any],
    baseline: Mapping[str, Any],
    host_config: Mapping[str, Any],
) -> None:
    """Keep the exposed ports the old image did not expose, and every published port."""
    image_ports = baseline.get("ExposedPorts") or {}
    ports = [port for port in config.get("ExposedPorts") or {} if port not in image_ports]
    ports += [port for port in host_config.get("PortBindings") or {} if port not in ports]
    if ports:
        body["ExposedPorts"] = {port: {} for port in ports}


def _carry_volumes(body: dict[str, Any], config: Mapping[str, Any], baseline: Mapping[str, Any]) -> None:
    """Keep the Config.Volumes paths the old image did not declare."""
    image_volumes = baseline.get("Volumes") or {}
    volumes = {path: {} for path in config.get("Volumes") or {} if path not in image_volumes}
    if volumes:
        body["Volumes"] = volumes
