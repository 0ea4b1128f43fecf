"""Checks of the test environment that hack/test.sh sets up: engine, registries, images, proxies.

When one of these fails, the other engine tests fail for the same reason, so read these first.
"""

from __future__ import annotations

import os
import socket
import time

import docker
import docker.errors
import httpx
import pytest
import requests

from tests.support.engine import Registry, remove_by_prefix
from tests.support.images import ImageError, build_image, push_image, wait_for_health
from tests.support.tcp_proxy import TcpProxy, UnixSocketProxy

pytestmark = pytest.mark.engine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_with_retries(url: str, *, timeout: float = 15) -> httpx.Response:
    """GET `url` until it responds, because a fresh container needs a moment to listen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def top_layer(registry_url: str, repository: str, tag: str) -> tuple[str, int]:
    """Return the digest and size of the last layer of `repository:tag` in a registry."""
    manifest = httpx.get(
        f"{registry_url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=5,
    ).json()
    layer = manifest["layers"][-1]
    return layer["digest"], layer["size"]


def test_engine_api_version(api: docker.APIClient) -> None:
    version = api.version()

    api_version = tuple(int(part) for part in version["ApiVersion"].split("."))
    assert api_version >= (1, 41)


def test_web_image_on_published_port(docker_client, registry: Registry, unique_prefix: str) -> None:
    port = free_port()
    container = docker_client.containers.run(
        registry.web_image,
        name=f"{unique_prefix}-web",
        ports={"8080/tcp": ("127.0.0.1", port)},
        detach=True,
    )

    response = get_with_retries(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200
    assert response.text.strip() == "web 1"
    assert wait_for_health(docker_client, container.id) == "healthy"

    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 5, "docker stop of the web image waited for the kill timeout"


def test_user_network_resolves_alias(docker_client, api, registry: Registry, unique_prefix: str) -> None:
    network = docker_client.networks.create(f"{unique_prefix}-net")
    server = api.create_container(
        registry.web_image,
        name=f"{unique_prefix}-server",
        host_config=api.create_host_config(network_mode=network.name),
        networking_config=api.create_networking_config(
            {network.name: api.create_endpoint_config(aliases=["web-alias"])}
        ),
    )
    api.start(server["Id"])
    assert wait_for_health(docker_client, server["Id"]) == "healthy"

    output = docker_client.containers.run(
        registry.base_image,
        ["wget", "-q", "-O", "-", "http://web-alias:8080/"],
        name=f"{unique_prefix}-client",
        network=network.name,
    )

    assert output.decode().strip() == "web 1"


def test_push_pull_open_registry(docker_client, registry: Registry, unique_prefix: str) -> None:
    tag = f"{registry.open_address}/{unique_prefix}/app:1"
    built_id = build_image(docker_client, tag, 'ENV MODE=round-trip\nCMD ["sleep", "60"]', push=True)
    docker_client.images.remove(tag)

    pulled = docker_client.images.pull(tag)

    assert pulled.id == built_id
    assert "MODE=round-trip" in pulled.attrs["Config"]["Env"]
    assert pulled.attrs["Config"]["Cmd"] == ["sleep", "60"]


def test_auth_registry_rejects_anonymous(registry: Registry) -> None:
    url = f"{registry.url(registry.auth_address)}/v2/"

    anonymous = httpx.get(url, timeout=5)
    authenticated = httpx.get(url, auth=(registry.username, registry.password), timeout=5)
    wrong_password = httpx.get(url, auth=(registry.username, "wrong"), timeout=5)

    assert anonymous.status_code == 401
    assert "Basic" in anonymous.headers["WWW-Authenticate"]
    assert authenticated.status_code == 200
    assert wrong_password.status_code == 401


def test_auth_registry_pull_needs_credentials(docker_client, registry: Registry, unique_prefix: str) -> None:
    tag = f"{registry.auth_address}/{unique_prefix}/app:1"
    built_id = build_image(docker_client, tag, "LABEL test=auth", push=True)
    docker_client.images.remove(tag)

    with pytest.raises(docker.errors.APIError) as anonymous_pull:
        docker_client.images.pull(tag)
    pulled = docker_client.images.pull(tag, auth_config=registry.auth_config)

    assert "no basic auth credentials" in str(anonymous_pull.value) or "unauthorized" in str(anonymous_pull.value)
    assert pulled.id == built_id


def test_push_error_raises(docker_client, registry: Registry, unique_prefix: str) -> None:
    # A port where no registry listens, so the push stream reports an error.
    tag = f"127.0.0.1:{free_port()}/{unique_prefix}/app:1"
    build_image(docker_client, tag, "LABEL test=push-error")

    with pytest.raises(ImageError, match="push of"):
        push_image(docker_client, tag)


def test_tcp_proxy_forwards(registry: Registry) -> None:
    with TcpProxy(5001) as proxy:
        response = httpx.get(f"http://{proxy.address}/v2/", timeout=5)

    assert response.status_code == 200


def test_tcp_proxy_rate_limit(docker_client, registry: Registry, unique_prefix: str) -> None:
    # Random bytes, so the layer neither compresses nor exists in the engine yet.
    payload = os.urandom(384 * 1024)
    tag = f"{registry.open_address}/{unique_prefix}/payload:1"
    build_image(docker_client, tag, "COPY payload /payload", {"payload": payload}, push=True)
    digest, size = top_layer(registry.url(registry.open_address), f"{unique_prefix}/payload", "1")
    rate = 128 * 1024

    with TcpProxy(5001) as proxy:
        started = time.monotonic()
        unlimited = httpx.get(f"http://{proxy.address}/v2/{unique_prefix}/payload/blobs/{digest}", timeout=30)
        unlimited_seconds = time.monotonic() - started

        proxy.bytes_per_second = rate
        started = time.monotonic()
        limited = httpx.get(f"http://{proxy.address}/v2/{unique_prefix}/payload/blobs/{digest}", timeout=30)
        limited_seconds = time.monotonic() - started

    assert len(unlimited.content) == size
    assert len(limited.content) == size
    assert unlimited_seconds < 1
    # Loose bounds: the limit counts every byte, so HTTP headers make it a little slower.
    assert limited_seconds > 0.7 * size / rate
    assert limited_seconds < 3 * size / rate


def test_engine_pull_through_slow_proxy(docker_client, registry: Registry, unique_prefix: str) -> None:
    payload = os.urandom(256 * 1024)
    tag = f"{registry.open_address}/{unique_prefix}/slow:1"
    built_id = build_image(docker_client, tag, "COPY payload /payload", {"payload": payload}, push=True)
    docker_client.images.remove(tag)
    rate = 128 * 1024

    with TcpProxy(5001, bytes_per_second=rate) as proxy:
        # The engine treats registries on 127.0.0.0/8 as plain HTTP, so the proxy needs no TLS.
        started = time.monotonic()
        pulled = docker_client.images.pull(f"{proxy.address}/{unique_prefix}/slow:1")
        pull_seconds = time.monotonic() - started

    assert pulled.id == built_id
    assert pull_seconds > 0.7 * len(payload) / rate


def test_tcp_proxy_stop_and_restart() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        proxy = TcpProxy(server.getsockname()[1]).start()
        port = proxy.port

        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
                assert proxy.open_connections == 1

                proxy.stop()
                assert client.recv(4) == b""
                assert accepted.recv(4) == b""
                assert proxy.open_connections == 0
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()

        proxy.start()
        try:
            assert proxy.port == port
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                accepted, _ = server.accept()
                with accepted:
                    accepted.sendall(b"pong")
                    assert client.recv(4) == b"pong"
        finally:
            proxy.stop()


def test_unix_proxy_engine_outage(docker_client, tmp_path) -> None:
    proxy = UnixSocketProxy(tmp_path / "engine.sock")
    proxy.start()
    client = docker.DockerClient(base_url=proxy.url, timeout=10)
    try:
        assert client.ping() is True

        proxy.cut()
        with pytest.raises(requests.exceptions.ConnectionError):
            client.ping()

        proxy.restore()
        assert client.ping() is True
        assert client.version()["ApiVersion"] == docker_client.version()["ApiVersion"]
    finally:
        client.close()
        proxy.stop()


def test_unix_proxy_stop_and_restart(tmp_path) -> None:
    proxy = UnixSocketProxy(tmp_path / "engine.sock")
    request = b"GET /_ping HTTP/1.0\r\n\r\n"

    with proxy:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(proxy.path)
            client.sendall(request)
            assert client.recv(1024).startswith(b"HTTP/1.0 200 OK")

    assert not os.path.exists(proxy.path)
    with socket.socket(socket.AF_UNIX) as client, pytest.raises(FileNotFoundError):
        client.connect(proxy.path)

    with proxy:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(proxy.path)
            client.sendall(request)
            assert client.recv(1024).startswith(b"HTTP/1.0 200 OK")


def test_cleanup_removes_prefixed_objects(docker_client, registry: Registry, unique_prefix: str) -> None:
    other_prefix = f"{unique_prefix}x-other"
    prefix = f"{unique_prefix}-inner"
    network = docker_client.networks.create(f"{prefix}-net")
    volume = docker_client.volumes.create(f"{prefix}-data")
    container = docker_client.containers.create(
        registry.base_image, ["sleep", "60"], name=f"{prefix}-app", volumes=["/anonymous"], network=network.name
    )
    container.start()
    container.reload()
    anonymous_volume = container.attrs["Mounts"][0]["Name"]
    docker_client.images.get(registry.base_image).tag(f"{registry.open_address}/{prefix}/app", "1")
    survivor = docker_client.volumes.create(f"{other_prefix}-data")

    failures = remove_by_prefix(docker_client, prefix)

    assert failures == []
    assert docker_client.containers.list(all=True, filters={"name": prefix}) == []
    assert docker_client.networks.list(names=[f"{prefix}-net"]) == []
    assert docker_client.volumes.list(filters={"name": prefix}) == []
    assert [tag for image in docker_client.images.list() for tag in image.tags if prefix in tag] == []
    assert docker_client.volumes.get(survivor.name).name == survivor.name
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(anonymous_volume)
