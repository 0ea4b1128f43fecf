"""An in-memory fake of `controller.clients.docker.DockerClient`.

NOTE: this fake serves only the unit and integration tests of the controller's own rules
(claiming, ordering, retries, cancellation, staleness) and the overhead benchmark. It
returns what engine 20.10 returns only as far as the operations read it. Every test of what
an operation does to real containers runs against the real engine.

`FakeDocker` keeps containers, images, networks and volumes in dictionaries and has the same
async methods as the real client: `call(method, *args, cli=..., **kwargs)`, `ping`,
`inspect_container`, `inspect_image` and `pull`. Like the real client it reports every
request to its observer with the call name, the CLI rendering, the duration and the
classified error. Switches:

- `unreachable = True`: every request raises `EngineUnavailable`, and `ping` returns False;
- `pull_seconds`: each pull takes this long, feeding progress events as it goes, and stops
  at once when its task is cancelled;
- `fail(method, error, times=...)`: the next `times` requests of `method` raise `error`;
- `missing_images`: references whose pull fails as "not found" in the registry.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio

from controller.clients.docker import (
    CallObserver,
    DockerConflict,
    DockerNotFound,
    EngineUnavailable,
    PullAborted,
    PullProgress,
)
from controller.errors import PermanentError
from controller.specs.reference import parse_reference

FAKE_LAYER_BYTES = 1_000_000  # size of the single layer of every fake image


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _image_key(reference: str) -> str:
    return parse_reference(reference).familiar()


@dataclass
class PlannedFailure:
    """An error that the next `times` requests of one method raise."""

    error: BaseException
    times: int


@dataclass
class FakeDocker:
    """A Docker engine kept in memory; see the module docstring for the switches."""

    observer: CallObserver | None = None
    unreachable: bool = False
    pull_seconds: float = 0.0
    missing_images: set[str] = field(default_factory=set)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Every request made, as (method, positional arguments, keyword arguments).
    requests: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    # Pulls that were stopped by cancellation.
    aborted_pulls: list[str] = field(default_factory=list)
    pulls_running: int = 0
    _failures: dict[str, PlannedFailure] = field(default_factory=dict)
    _ids: Any = field(default_factory=itertools.count)

    # Switches

    def fail(self, method: str, error: BaseException, *, times: int = 1_000_000) -> None:
        """Make the next `times` requests of `method` raise `error` (by default, all of them)."""
        self._failures[method] = PlannedFailure(error, times)

    def heal(self, method: str | None = None) -> None:
        """Remove the planned failures of `method`, or of every method."""
        if method is None:
            self._failures.clear()
        else:
            self._failures.pop(method, None)

    def add_image(self, reference: str, **config: Any) -> dict[str, Any]:
        """Put an image into the engine as if it had been pulled; return its inspect output."""
        key = _image_key(reference)
        image = {
            "Id": _digest("image " + key),
            "RepoTags": [key],
            "RepoDigests": [f"{key.rsplit(':', 1)[0]}@{_digest('manifest ' + key)}"],
            "Config": {"Env": [], "Cmd": ["sh"], "Entrypoint": None, "Labels": {}, **config},
            "Size": FAKE_LAYER_BYTES,
        }
        self.images[key] = image
        return image

    def endpoint(self) -> str:
        return "fake://docker"

    # The client's interface

    async def call(self, method: str, *args: Any, cli: str | None = None, **kwargs: Any) -> Any:
        """Carry out one request in memory; raise what the real client would raise."""
        started = time.monotonic()
        error: BaseException | None = None
        self.requests.append((method, args, kwargs))
        try:
            self._check_reachable(method)
            self._raise_planned(method)
            handler: Callable[..., Any] | None = getattr(self, f"_do_{method}", None)
            if handler is None:
                raise NotImplementedError(f"FakeDocker has no request {method!r}; add _do_{method}")
            await anyio.sleep(0)
            return handler(*args, **kwargs)
        except Exception as exc:
            error = exc
            raise
        finally:
            if self.observer is not None:
                self.observer(call=method, cli=cli, seconds=time.monotonic() - started, error=error)

    async def ping(self) -> bool:
        try:
            await self.call("ping")
        except Exception:  # noqa: BLE001 - the real ping never raises either
            return False
        return True

    async def inspect_container(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("inspect_container", name, cli=f"docker container inspect {name}")
        except DockerNotFound:
            return None

    async def inspect_image(self, reference: str) -> dict[str, Any] | None:
        try:
            return await self.call("inspect_image", reference, cli=f"docker image inspect {reference}")
        except DockerNotFound:
            return None

    async def pull(
        self,
        repository: str,
        tag: str,
        *,
        auth_config: dict[str, str] | None = None,
        progress: PullProgress,
        cli: str | None = None,
    ) -> None:
        """Pull in `pull_seconds`, feeding ten progress events; cancellation aborts it."""
        reference = f"{repository}@{tag}" if tag.startswith("sha256:") else f"{repository}:{tag}"
        started = time.monotonic()
        error: BaseException | None = None
        self.requests.append(("pull", (repository, tag), {"auth_config": auth_config}))
        self.pulls_running += 1
        try:
            self._check_reachable("pull")
            self._raise_planned("pull")
            if _image_key(reference) in {_image_key(name) for name in self.missing_images}:
                raise PermanentError(f"image {reference} not found in its registry (manifest unknown); check the name and tag")

            layer = _digest("layer " + reference)[7:19]
            steps = 10
            for step in range(1, steps + 1):
                await anyio.sleep(self.pull_seconds / steps)
                progress.feed(
                    {
                        "id": layer,
                        "status": "Downloading",
                        "progressDetail": {"current": FAKE_LAYER_BYTES * step // steps, "total": FAKE_LAYER_BYTES},
                    }
                )
            progress.feed({"id": layer, "status": "Pull complete", "progressDetail": {}})
            self.add_image(reference)
        except anyio.get_cancelled_exc_class():
            self.aborted_pulls.append(reference)
            error = PullAborted("cancelled")
            raise
        except Exception as exc:
            error = exc
            raise
        finally:
            self.pulls_running -= 1
            if self.observer is not None:
                self.observer(call="pull", cli=cli, seconds=time.monotonic() - started, error=error)

    # Request handlers, named `_do_<docker-py APIClient method>`

    def _check_reachable(self, method: str) -> None:
        if self.unreachable:
            raise EngineUnavailable(f"Docker engine unreachable during {method}: fake engine switched off")

    def _raise_planned(self, method: str) -> None:
        planned = self._failures.get(method)
        if planned is None:
            return
        planned.times -= 1
        if planned.times <= 0:
            del self._failures[method]
        raise planned.error

    def _find_container(self, name_or_id: str) -> dict[str, Any]:
        for container in self.containers.values():
            if container["Id"] == name_or_id or container["Id"].startswith(name_or_id) and len(name_or_id) >= 12:
                return container
        if name_or_id in self.containers:
            return self.containers[name_or_id]
        raise DockerNotFound(f"No such container: {name_or_id}")

    def _do_ping(self) -> bool:
        return True

    def _do_inspect_container(self, name_or_id: str) -> dict[str, Any]:
        return self._find_container(name_or_id)

    def _do_inspect_image(self, reference: str) -> dict[str, Any]:
        key = _image_key(reference)
        if key not in self.images:
            raise DockerNotFound(f"No such image: {reference}")
        return self.images[key]

    def _do_create_container_from_config(self, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        image = self.images.get(_image_key(body["Image"]))
        if image is None:
            raise DockerNotFound(f"No such image: {body['Image']}")
        container_name = name or f"fake_{next(self._ids)}"
        if container_name in self.containers:
            raise DockerConflict(f'Conflict. The container name "/{container_name}" is already in use')

        container_id = _digest(f"container {container_name} {next(self._ids)}")[7:]
        config = {key: value for key, value in body.items() if key not in ("HostConfig", "NetworkingConfig")}
        self.containers[container_name] = {
            "Id": container_id,
            "Name": "/" + container_name,
            "Image": image["Id"],
            "Config": config,
            "HostConfig": body.get("HostConfig") or {},
            "NetworkSettings": {"Networks": dict((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})},
            "State": {"Status": "created", "Running": False, "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z"},
        }
        return {"Id": container_id, "Warnings": []}

    def _do_start(self, name_or_id: str) -> None:
        container = self._find_container(name_or_id)
        container["State"] = {
            "Status": "running",
            "Running": True,
            "ExitCode": 0,
            "StartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _do_stop(self, name_or_id: str, timeout: int | None = None) -> None:
        container = self._find_container(name_or_id)
        container["State"] = {**container["State"], "Status": "exited", "Running": False}

    def _do_rename(self, name_or_id: str, name: str) -> None:
        container = self._find_container(name_or_id)
        if name in self.containers:
            raise DockerConflict(f'Conflict. The container name "/{name}" is already in use')
        del self.containers[container["Name"][1:]]
        container["Name"] = "/" + name
        self.containers[name] = container

    def _do_remove_container(self, name_or_id: str, force: bool = False, v: bool = False) -> None:
        container = self._find_container(name_or_id)
        if container["State"]["Running"] and not force:
            raise DockerConflict(f"You cannot remove a running container {container['Id']}. Stop the container before attempting removal or force remove")
        del self.containers[container["Name"][1:]]

    def _do_logs(self, name_or_id: str, **_: Any) -> bytes:
        self._find_container(name_or_id)
        return b""

    def _do_containers(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        listed = []
        for name, container in self.containers.items():
            if not all and not container["State"]["Running"]:
                continue
            listed.append({"Id": container["Id"], "Names": ["/" + name], "Image": container["Config"].get("Image"), "ImageID": container["Image"]})
        return listed

    def _do_inspect_network(self, name: str) -> dict[str, Any]:
        if name not in self.networks:
            raise DockerNotFound(f"network {name} not found")
        return self.networks[name]

    def _do_create_network(self, name: str, **options: Any) -> dict[str, Any]:
        if name in self.networks:
            raise DockerConflict(f"network with name {name} already exists")
        network_id = _digest("network " + name)[7:]
        self.networks[name] = {"Id": network_id, "Name": name, "Labels": options.get("labels") or {}}
        return {"Id": network_id, "Warning": ""}

    def _do_connect_container_to_network(self, container: str, network: str, **options: Any) -> None:
        found = self._find_container(container)
        if network not in self.networks:
            raise DockerNotFound(f"network {network} not found")
        found["NetworkSettings"]["Networks"][network] = {"Aliases": options.get("aliases")}

    def _do_inspect_volume(self, name: str) -> dict[str, Any]:
        if name not in self.volumes:
            raise DockerNotFound(f"get {name}: no such volume")
        return self.volumes[name]

    def _do_create_volume(self, name: str, **options: Any) -> dict[str, Any]:
        volume = {"Name": name, "Driver": options.get("driver") or "local", "Labels": options.get("labels") or {}}
        self.volumes.setdefault(name, volume)
        return self.volumes[name]
