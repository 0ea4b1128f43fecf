"""Access to the shared test engine and registries that hack/test.sh starts.

The fixtures in tests/conftest.py are thin wrappers around this module:

- `connect_engine()` returns a `docker.DockerClient` from the environment, or fails the
  test with a message naming the script that starts the engine.
- `new_prefix()` makes the name prefix that every container, network, volume and image tag
  of one test starts with.
- `remove_by_prefix()` removes what a test left behind under its prefix.
- `Registry` describes the two local registries and the shared test images.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

import docker
import docker.errors
import httpx
import pytest
import requests

# API version of Debian 12's docker.io (engine 20.10), the oldest engine dockwright supports.
MIN_API_VERSION = (1, 41)

SETUP_HINT = "Run `bash hack/test.sh` (or hack/engine.sh, hack/registries.sh, hack/images.sh) first."


@dataclass(frozen=True)
class Registry:
    """The local test registries and the images hack/images.sh pushes to them."""

    open_address: str = "localhost:5001"
    auth_address: str = "localhost:5002"
    username: str = "dockwright"
    password: str = "dockwright-test-secret"
    base_image: str = "localhost:5001/dockwright-test/busybox:1"
    web_image: str = "localhost:5001/dockwright-test/web:1"

    @property
    def auth_config(self) -> dict[str, str]:
        """Credentials for the auth registry in docker-py's `auth_config` form."""
        return {"username": self.username, "password": self.password}

    def url(self, address: str) -> str:
        """Return the plain-HTTP base URL of the registry at `address`, e.g. for /v2/ requests."""
        port = address.rsplit(":", 1)[1]
        return f"http://127.0.0.1:{port}"


def connect_engine() -> docker.DockerClient:
    """Connect to the engine named by DOCKER_HOST (default: the local socket) and ping it.

    Calls `pytest.fail` when the engine does not respond, so engine tests fail with a hint to
    start it instead of being skipped.
    """
    engine_address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    error = _unix_socket_error(engine_address)

    client = None
    if error is None:
        try:
            client = docker.from_env(timeout=60)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            error = str(exc)

    if error is not None or client is None:
        pytest.fail(
            f"The Docker engine at {engine_address} is not reachable: {error}. {SETUP_HINT}",
            pytrace=False,
        )
    return client


def _unix_socket_error(engine_address: str) -> str | None:
    """Connect to a `unix://` engine socket and describe the failure, or return None.

    The check runs before docker-py, because a failed connect inside docker-py's (7.2) client
    constructor leaves its socket unclosed, which the test settings turn into an error.
    """
    if not engine_address.startswith("unix://"):
        return None
    path = engine_address.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            return f"cannot connect to {path}: {exc.strerror or exc}"
    return None


def check_registries(registry: Registry) -> None:
    """Fail the test with a setup hint unless both registries respond and hold the base image."""
    manifest_accept = "application/vnd.docker.distribution.manifest.v2+json"
    base_path = registry.base_image.split("/", 1)[1].replace(":", "/manifests/")

    for address in (registry.open_address, registry.auth_address):
        url = f"{registry.url(address)}/v2/{base_path}"
        try:
            response = httpx.head(
                url,
                auth=(registry.username, registry.password),
                headers={"Accept": manifest_accept},
                timeout=5,
            )
        except httpx.HTTPError as error:
            pytest.fail(f"The registry {address} is not reachable: {error}. {SETUP_HINT}", pytrace=False)
        if response.status_code != 200:
            pytest.fail(
                f"The registry {address} returned HTTP {response.status_code} for {url}, "
                f"expected the base image's manifest. {SETUP_HINT}",
                pytrace=False,
            )


def new_prefix() -> str:
    """Return a short name prefix unique to this test and xdist worker, e.g. `dwt-gw1-3fa29c`.

    It is lower case and made of letters, digits and dashes, so it is valid in container,
    network and volume names and in image repository paths.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"dwt-{worker}-{secrets.token_hex(3)}"


def remove_by_prefix(client: docker.DockerClient, prefix: str) -> list[str]:
    """Remove the containers, networks, volumes and image references whose name contains `prefix`.

    Containers whose name starts with the prefix are force-removed with their anonymous
    volumes, then networks and volumes whose name starts with it, then every image tag or
    digest reference that contains it anywhere (`localhost:5001/PREFIX/app:1`, `PREFIX-app:1`,
    `localhost:5001/PREFIX/app@sha256:...`). Removal continues past errors. Returns the
    failures, each naming the object and the error, so a caller can report them.
    """
    # The low-level API lists without inspecting each object, so objects that other tests
    # remove meanwhile cannot make the listing fail.
    api = client.api
    failures: list[str] = []

    # Anonymous volumes that a recreate carried over are mounted by name in the new container,
    # so removing that container with `v=True` leaves them. They are removed below.
    carried: set[str] = set()
    for container in api.containers(all=True, filters={"name": prefix}):
        name = container["Names"][0].lstrip("/") if container["Names"] else container["Id"]
        if name.startswith(prefix):
            for mount in container.get("Mounts") or []:
                if mount.get("Type") == "volume" and _is_anonymous(mount.get("Name") or ""):
                    carried.add(mount["Name"])
            _remove(failures, f"container {name}", api.remove_container, container["Id"], force=True, v=True)

    for volume_name in carried:
        try:
            api.remove_volume(volume_name)
        except docker.errors.APIError:
            pass  # gone already, or still used by a container of another test

    for network in api.networks(names=[prefix]):
        if network["Name"].startswith(prefix):
            _remove(failures, f"network {network['Name']}", api.remove_network, network["Id"])

    for volume in api.volumes(filters={"name": prefix}).get("Volumes") or []:
        if volume["Name"].startswith(prefix):
            _remove(failures, f"volume {volume['Name']}", api.remove_volume, volume["Name"], force=True)

    for image in api.images():
        for tag in image.get("RepoTags") or []:
            if prefix in tag:
                _remove(failures, f"image {tag}", api.remove_image, tag, force=True)
        # An image that a newer pull untagged keeps only its digest reference.
        for reference in image.get("RepoDigests") or []:
            if prefix in reference:
                _remove(failures, f"image {reference}", api.remove_image, reference, force=True)

    return failures


def _is_anonymous(volume_name: str) -> bool:
    """Tell whether a volume name is one the engine made up (64 hexadecimal digits)."""
    return len(volume_name) == 64 and all(character in "0123456789abcdef" for character in volume_name)


def _remove(failures: list[str], description: str, remove, *args, **kwargs) -> None:
    """Call `remove`, ignore an object that is already gone, and record any other error."""
    try:
        remove(*args, **kwargs)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        failures.append(f"{description}: {error}")
