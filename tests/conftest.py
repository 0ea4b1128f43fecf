"""Shared pytest fixtures for the engine and registry tests.

- `docker_client` (session): a `docker.DockerClient` from the environment. Tests fail, and
  are never skipped, when the engine does not respond; hack/test.sh starts it.
- `api` (session): the low-level `docker.APIClient` of `docker_client`.
- `registry` (session): a `tests.support.engine.Registry` with the registry addresses, the
  credentials of the auth registry and the shared test images.
- `unique_prefix` (function): a prefix such as `dwt-gw0-a1b2c3` for the names of every
  container, network, volume and image tag a test creates.

A test that uses `docker_client`, `api` or `registry`, or is marked `engine`, gets the
`engine` marker, and after it ends everything named with its prefix is removed. Engine tests
marked `serial` run alone: they take an exclusive file lock that every other engine test
takes shared, across xdist workers.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import docker
import pytest

from tests.support.engine import Registry, check_registries, connect_engine, new_prefix, remove_by_prefix

ENGINE_FIXTURES = {"docker_client", "api", "registry"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = connect_engine()
    yield client
    client.close()


@pytest.fixture(scope="session")
def api(docker_client: docker.DockerClient) -> docker.APIClient:
    return docker_client.api


@pytest.fixture(scope="session")
def registry(docker_client: docker.DockerClient) -> Registry:
    test_registry = Registry()
    check_registries(test_registry)
    return test_registry


@pytest.fixture
def unique_prefix() -> str:
    return new_prefix()


@pytest.fixture(scope="session")
def _serial_lock_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Under xdist each worker's base temp dir is a child of one shared dir.
    return str(tmp_path_factory.getbasetemp().parent / "dockwright-serial.lock")


@pytest.fixture(autouse=True)
def _engine_isolation(request: pytest.FixtureRequest, _serial_lock_path: str) -> Iterator[None]:
    """Serialize `serial` tests against other engine tests, and remove what a test left behind."""
    if request.node.get_closest_marker("engine") is None:
        yield
        return

    client: docker.DockerClient = request.getfixturevalue("docker_client")
    prefix: str = request.getfixturevalue("unique_prefix")
    lock_mode = fcntl.LOCK_EX if request.node.get_closest_marker("serial") else fcntl.LOCK_SH

    with open(_serial_lock_path, "a") as lock_file:
        fcntl.flock(lock_file, lock_mode)
        try:
            yield
        finally:
            failures = remove_by_prefix(client, prefix)
            fcntl.flock(lock_file, fcntl.LOCK_UN)

    if failures:
        pytest.fail(f"cleanup of prefix {prefix} failed: " + "; ".join(failures), pytrace=False)
