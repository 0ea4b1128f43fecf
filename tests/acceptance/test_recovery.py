"""Crashes, shutdowns and engine outages: nothing is lost and every row ends.

The daemon runs as a subprocess and is stopped with real signals; the engine outage is made
by removing the socket of a proxy in front of the real engine, so the shared engine keeps
running for the other tests.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import docker

from tests.acceptance.conftest import SlowImage
from tests.support.daemon import Daemon
from tests.support.engine import Registry
from tests.support.tcp_proxy import UnixSocketProxy


def wait_for_progress(daemon: Daemon, op_id: int, minimum: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = daemon.table.row(op_id)
        if row["status"] == "in_progress" and row["progress"] >= minimum:
            return row
        time.sleep(0.05)
    raise AssertionError(f"operation {op_id} never reached progress {minimum}: {daemon.table.row(op_id)}")


def test_sigkill_during_pull_is_rescued(
    make_daemon, slow_image: SlowImage, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A daemon killed mid-pull leaves the row in progress; the next start rescues and finishes it."""
    daemon = make_daemon().start()
    name = f"{unique_prefix}-killed"
    op_id = daemon.table.insert(type="start", container=name, image=slow_image.reference)
    wait_for_progress(daemon, op_id, 10)

    daemon.kill()
    assert daemon.table.row(op_id)["status"] == "in_progress"

    daemon.start()
    row = daemon.table.wait(op_id, timeout=90)
    assert row["status"] == "completed", row
    assert row["attempts"] == 2
    messages = [log["message"] for log in daemon.table.logs(op_id)]
    assert any(message.startswith("rescued:") for message in messages), messages
    assert docker_client.api.inspect_container(name)["State"]["Running"] is True


def test_sigterm_during_pull_returns_row_to_pending(
    make_daemon, slow_image: SlowImage, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """SIGTERM waits `shutdown_grace`, then aborts the pull and returns the row to pending."""
    daemon = make_daemon(dockwright_shutdown_grace="1").start()
    name = f"{unique_prefix}-term"
    op_id = daemon.table.insert(type="start", container=name, image=slow_image.reference)
    wait_for_progress(daemon, op_id, 10)

    stopped_at = time.monotonic()
    assert daemon.stop(signum=signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - stopped_at < 10

    row = daemon.table.row(op_id)
    assert row["status"] == "pending"
    assert row["message"] == "returned to pending at controller shutdown"
    assert row["claimed_by"] is None
    assert json.loads(row["result"])["tries"] == 1
    assert docker_client.api.containers(all=True, filters={"name": name}) == []

    daemon.start()
    assert daemon.table.wait(op_id, timeout=90)["status"] == "completed"
    assert docker_client.api.inspect_container(name)["State"]["Running"] is True


def test_sigterm_lets_running_operation_finish(make_daemon, slow_image: SlowImage, unique_prefix: str) -> None:
    """Within the grace period a running pull finishes instead of being interrupted."""
    daemon = make_daemon(dockwright_shutdown_grace="60").start()
    op_id = daemon.table.insert(type="start", container=f"{unique_prefix}-grace", image=slow_image.reference)
    wait_for_progress(daemon, op_id, 10)

    assert daemon.stop(signum=signal.SIGTERM) == 0
    row = daemon.table.row(op_id)
    assert row["status"] == "completed", row
    assert row["attempts"] == 1


def test_rows_wait_for_unreachable_engine(
    make_daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str, tmp_path: Path
) -> None:
    """Rows inserted while the engine is down stay pending, then complete once it is back."""
    proxy = UnixSocketProxy(tmp_path / "engine.sock")
    proxy.start()
    try:
        daemon = make_daemon(dockwright_docker_host=proxy.url).start()
        proxy.stop()

        names = [f"{unique_prefix}-wait{i}" for i in range(2)]
        ids = [daemon.table.insert(type="start", container=name, image=registry.web_image) for name in names]
        time.sleep(4)
        for op_id in ids:
            waiting = daemon.table.row(op_id)
            assert waiting["status"] == "pending"
            assert waiting["message"].startswith("waiting for the Docker engine")
        assert daemon.process.poll() is None
        daemon.wait_for_event("engine.unreachable")

        proxy.start()
        for op_id in ids:
            row = daemon.table.wait(op_id, timeout=60)
            assert row["status"] == "completed", row
        for name in names:
            assert docker_client.api.inspect_container(name)["State"]["Running"] is True
        daemon.wait_for_event("engine.reachable")
    finally:
        proxy.stop()


def test_second_daemon_on_same_file_refuses(make_daemon, docker_client: docker.DockerClient, tmp_path: Path) -> None:
    first = make_daemon(tmp_path / "shared").start()
    second = make_daemon(tmp_path / "shared")
    second.start(wait=False)

    assert second.process.wait(timeout=30) == 1
    assert "another dockwright controller" in second.log_text()
    assert str(first.process.pid) in second.log_text()
    assert first.process.poll() is None


def test_cancel_during_pull(make_daemon, slow_image: SlowImage, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """Cancelling a running start aborts its pull and ends the row cancelled."""
    daemon = make_daemon().start()
    name = f"{unique_prefix}-cancel"
    op_id = daemon.table.insert(type="start", container=name, image=slow_image.reference)
    wait_for_progress(daemon, op_id, 10)

    daemon.table.execute("UPDATE docker_operations SET cancel_requested = 1 WHERE id = ?", op_id)
    row = daemon.table.wait(op_id, timeout=15)
    assert row["status"] == "cancelled"
    assert docker_client.api.containers(all=True, filters={"name": name}) == []


def test_cancel_pending_row(make_daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    daemon = make_daemon(dockwright_concurrency="1").start()
    slow_name = f"{unique_prefix}-first"
    daemon.table.insert(type="start", container=slow_name, image=registry.web_image)
    op_id = daemon.table.insert(type="start", container=f"{unique_prefix}-never", image=registry.web_image, cancel_requested=1)

    row = daemon.table.wait(op_id)
    assert row["status"] == "cancelled"
    assert row["attempts"] == 0
    assert docker_client.api.containers(all=True, filters={"name": f"{unique_prefix}-never"}) == []
