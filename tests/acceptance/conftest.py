"""Fixtures of the acceptance tests: `dockwright run` as a subprocess, and slow images.

`daemon` is a started daemon on a fresh SQLite file; `make_daemon` builds more (another one
on the same file, or one with other settings). `slow_image` is an image of about 4 MB of
incompressible data, pushed to the open registry and removed locally, whose reference goes
through a bandwidth-limited proxy, so a pull takes a few seconds and its progress can be seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import pytest

from tests.support.daemon import Daemon
from tests.support.engine import Registry
from tests.support.images import build_image
from tests.support.tcp_proxy import TcpProxy

SLOW_IMAGE_BYTES = 4_000_000
SLOW_PULL_RATE = 1_000_000  # bytes per second through the proxy


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def make(workdir: Path | None = None, **env: str) -> Daemon:
        daemon = Daemon(workdir or tmp_path / "daemon", env={k.upper(): str(v) for k, v in env.items()})
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop(timeout=60)


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon], docker_client: docker.DockerClient) -> Daemon:
    return make_daemon().start()


@dataclass(frozen=True)
class SlowImage:
    """An image in the open registry, reachable through a throttled proxy."""

    pushed_as: str  # the reference in the registry, localhost:5001/...
    reference: str  # the same image through the proxy, 127.0.0.1:PORT/...
    proxy: TcpProxy


@pytest.fixture
def slow_image(docker_client: docker.DockerClient, registry: Registry, unique_prefix: str) -> Iterator[SlowImage]:
    pushed_as = f"{registry.open_address}/{unique_prefix}/slow:1"
    build_image(
        docker_client,
        pushed_as,
        'COPY filler /filler\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
        {"filler": os.urandom(SLOW_IMAGE_BYTES), "index.html": "slow 1\n"},
        push=True,
    )
    docker_client.images.remove(pushed_as, force=True)

    registry_port = int(registry.open_address.rsplit(":", 1)[1])
    with TcpProxy(registry_port, bytes_per_second=SLOW_PULL_RATE) as proxy:
        reference = f"{proxy.address}/{unique_prefix}/slow:1"
        yield SlowImage(pushed_as=pushed_as, reference=reference, proxy=proxy)
