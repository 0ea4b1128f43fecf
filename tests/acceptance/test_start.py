"""The start operation end to end: rows written with plain SQL, `dockwright run` as a
subprocess, the real engine and the local registry."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import docker
import pytest

from tests.acceptance.conftest import SlowImage
from tests.support.daemon import Daemon, run_cli
from tests.support.engine import Registry
from tests.support.network import free_port, http_get


def sample_progress(daemon: Daemon, op_id: int, timeout: float = 60.0) -> list[int]:
    """Record the progress column until the operation ends."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = daemon.table.row(op_id)
        if not seen or seen[-1] != row["progress"]:
            seen.append(row["progress"])
        if row["status"] in ("completed", "failed", "cancelled"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"operation {op_id} did not end within {timeout} s; progress seen {seen}")


def test_start_from_registry_full_spec(
    daemon: Daemon, slow_image: SlowImage, docker_client: docker.DockerClient, unique_prefix: str, tmp_path: Path
) -> None:
    """A start pulls with rising byte progress and creates exactly the requested container."""
    port = free_port()
    bind_dir = tmp_path / "bind"
    bind_dir.mkdir()
    (bind_dir / "hello.txt").write_text("from the host")
    name = f"{unique_prefix}-web"
    spec = {
        "ports": [f"127.0.0.1:{port}:8080"],
        "environment": {"MODE": "demo", "EMPTY": ""},
        "labels": {"team": "payments"},
        "volumes": [f"{unique_prefix}-data:/data", f"{bind_dir}:/host:ro"],
        "networks": {f"{unique_prefix}-net": {"aliases": ["frontend"]}},
        "restart": "unless-stopped",
        "healthcheck": {"test": ["CMD", "true"], "interval": "1s", "timeout": "2s", "retries": 3},
    }
    op_id = daemon.table.insert(type="start", container=name, image=slow_image.reference, spec=spec)

    progress = sample_progress(daemon, op_id)
    row = daemon.table.row(op_id)
    assert row["status"] == "completed", row
    assert progress == sorted(progress), f"progress went down: {progress}"
    assert progress[-1] == 100
    assert any(5 < value < 80 for value in progress), f"no progress during the pull: {progress}"

    inspect = docker_client.api.inspect_container(name)
    assert inspect["State"]["Running"] is True
    assert http_get(port) == "slow 1\n"
    assert inspect["HostConfig"]["PortBindings"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert "MODE=demo" in inspect["Config"]["Env"]
    assert "EMPTY=" in inspect["Config"]["Env"]
    assert inspect["Config"]["Labels"]["team"] == "payments"
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert inspect["Config"]["Healthcheck"]["Test"] == ["CMD", "true"]
    assert inspect["Config"]["Healthcheck"]["Interval"] == 1_000_000_000
    assert inspect["Config"]["Healthcheck"]["Retries"] == 3

    mounts = {mount["Destination"]: mount for mount in inspect["Mounts"]}
    assert mounts["/data"]["Type"] == "volume"
    assert mounts["/data"]["Name"] == f"{unique_prefix}-data"
    assert mounts["/host"]["Type"] == "bind"
    assert mounts["/host"]["RW"] is False
    exec_id = docker_client.api.exec_create(name, ["cat", "/host/hello.txt"])
    assert docker_client.api.exec_start(exec_id).decode() == "from the host"

    networks = inspect["NetworkSettings"]["Networks"]
    assert f"{unique_prefix}-net" in networks
    assert "frontend" in networks[f"{unique_prefix}-net"]["Aliases"]
    volume = docker_client.api.inspect_volume(f"{unique_prefix}-data")
    assert volume["Labels"]["dockwright.created-by"] == "dockwright"
    network = docker_client.api.inspect_network(f"{unique_prefix}-net")
    assert network["Labels"]["dockwright.created-by"] == "dockwright"

    result = json.loads(row["result"])
    assert result["container_id"] == inspect["Id"]
    assert result["outcome"] == "created"


def test_start_logs_docker_calls_with_cli(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """Each Docker call's log row carries the docker command and its duration."""
    name = f"{unique_prefix}-logged"
    op_id = daemon.table.insert(type="start", container=name, image=registry.web_image, spec={"command": ["httpd", "-f", "-p", "8080"]})
    assert daemon.table.wait(op_id)["status"] == "completed"

    details = [json.loads(log["details"]) for log in daemon.table.logs(op_id) if log["details"]]
    calls = {entry["call"]: entry for entry in details if "call" in entry}
    assert calls["create_container_from_config"]["cli"].startswith(f"docker create --name {name} ")
    assert calls["start"]["cli"] == f"docker start {name}"
    assert all(entry["duration_ms"] >= 0 for entry in calls.values())

    # The structlog JSON events carry the same ids as the rows.
    events = [e for e in daemon.events() if e.get("operation_id") == op_id]
    assert {e["event"] for e in events} >= {"operation.claimed", "operation.step", "docker.call", "operation.completed"}
    assert all(e["type"] == "start" and e["container"] == name for e in events)


def test_start_with_sqlite3_tool(daemon: Daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """A row inserted with the sqlite3 command-line tool ends completed with the container running."""
    name = f"{unique_prefix}-cli"
    sql = (
        "INSERT INTO docker_operations (type, container, image, spec) "
        f"VALUES ('start', '{name}', '{registry.web_image}', '{{\"environment\": {{\"MODE\": \"demo\"}}}}');"
    )
    subprocess.run(["sqlite3", str(daemon.database), sql], check=True)
    op_id = daemon.table.execute("SELECT max(id) AS id FROM docker_operations")[0]["id"]

    assert daemon.table.wait(op_id)["status"] == "completed"
    assert docker_client.api.inspect_container(name)["State"]["Running"] is True


def test_start_from_compose_file_with_interpolation(
    make_daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str, tmp_path: Path
) -> None:
    """A compose-file service gets interpolated values, the Compose default name and labels."""
    port = free_port()
    compose = tmp_path / "app" / "compose.yaml"
    compose.parent.mkdir()
    compose.write_text(
        "services:\n"
        "  web:\n"
        f"    image: {registry.web_image}\n"
        "    ports:\n"
        '      - "127.0.0.1:${WEB_PORT:-1}:8080"\n'
        "    environment:\n"
        "      MODE: ${MODE:-fallback}\n"
        "      GREETING: ${GREETING:-hello}\n"
    )
    # The daemon's environment supplies the variables, as for `docker compose`.
    daemon = make_daemon(web_port=str(port), mode="compose").start()

    project = unique_prefix
    op_id = daemon.table.insert(
        type="start", spec={"compose_file": str(compose), "service": "web", "project": project}
    )
    row = daemon.table.wait(op_id)
    assert row["status"] == "completed", row

    name = f"{project}-web-1"
    inspect = docker_client.api.inspect_container(name)
    assert "MODE=compose" in inspect["Config"]["Env"]
    assert "GREETING=hello" in inspect["Config"]["Env"]
    assert inspect["Config"]["Labels"]["com.docker.compose.project"] == project
    assert inspect["Config"]["Labels"]["com.docker.compose.service"] == "web"
    assert "web 1" in http_get(port)
    assert f"{project}_default" in inspect["NetworkSettings"]["Networks"]


def test_repeated_start_is_already_running(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    name = f"{unique_prefix}-again"
    first = daemon.table.insert(type="start", container=name, image=registry.web_image)
    assert daemon.table.wait(first)["status"] == "completed"
    second = daemon.table.insert(type="start", container=name, image=registry.web_image)
    row = daemon.table.wait(second)

    assert row["status"] == "completed"
    assert "already running" in row["message"]
    assert daemon.table.result(second)["outcome"] == "already_running"
    assert daemon.table.result(second)["container_id"] == daemon.table.result(first)["container_id"]


def test_start_of_stopped_container_starts_it(
    daemon: Daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    name = f"{unique_prefix}-stopped"
    first = daemon.table.insert(type="start", container=name, image=registry.web_image)
    assert daemon.table.wait(first)["status"] == "completed"
    docker_client.api.stop(name, timeout=1)

    second = daemon.table.insert(type="start", container=name, image=registry.web_image)
    assert daemon.table.wait(second)["status"] == "completed"
    assert daemon.table.result(second)["outcome"] == "started_existing"
    assert docker_client.api.inspect_container(name)["State"]["Running"] is True


def test_start_with_other_spec_fails_unless_replace(
    daemon: Daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    name = f"{unique_prefix}-differs"
    first = daemon.table.insert(type="start", container=name, image=registry.web_image)
    assert daemon.table.wait(first)["status"] == "completed"

    differing = daemon.table.insert(type="start", container=name, image=registry.web_image, spec={"environment": {"NEW": "1"}})
    row = daemon.table.wait(differing)
    assert row["status"] == "failed"
    assert "recreate" in row["error"]
    assert "options.replace" in row["error"]

    replacing = daemon.table.insert(
        type="start", container=name, image=registry.web_image, spec={"environment": {"NEW": "1"}}, options={"replace": True}
    )
    assert daemon.table.wait(replacing)["status"] == "completed"
    assert "NEW=1" in docker_client.api.inspect_container(name)["Config"]["Env"]


def test_image_not_found_fails(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    reference = f"{registry.open_address}/{unique_prefix}/missing:1"
    op_id = daemon.table.insert(type="start", container=f"{unique_prefix}-missing", image=reference)
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert reference in row["error"]
    assert "not found" in row["error"]
    assert json.loads(row["result"])["tries"] == 1  # permanent: no retry


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        ({"type": "start", "spec": "{not json"}, "spec"),
        ({"type": "start", "image": "busybox", "spec": '{"frobnicate": 1}'}, "frobnicate"),
        ({"type": "explode"}, "type"),
        ({"type": "start", "image": "Upper/Case:1"}, "Upper/Case"),
        ({"type": "start", "image": "busybox", "options": '{"pull": "sometimes"}'}, "options.pull"),
    ],
    ids=["invalid-json", "unsupported-key", "unknown-type", "invalid-reference", "invalid-option"],
)
def test_invalid_row_fails_and_others_go_on(
    daemon: Daemon, registry: Registry, unique_prefix: str, columns: dict, named: str
) -> None:
    """A row that cannot be understood fails naming the value; the next valid row completes."""
    bad = daemon.table.insert(container=f"{unique_prefix}-bad", **columns)
    good = daemon.table.insert(type="start", container=f"{unique_prefix}-ok", image=registry.web_image)

    bad_row = daemon.table.wait(bad)
    assert bad_row["status"] == "failed"
    assert named in bad_row["error"]
    assert daemon.table.wait(good)["status"] == "completed"
    assert daemon.process.poll() is None


def test_secret_value_appears_nowhere(
    daemon: Daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A secret environment value never reaches the log table, the JSON log or CLI output."""
    secret = f"s3cr3t-{unique_prefix}"
    name = f"{unique_prefix}-secret"
    op_id = daemon.table.insert(
        type="start",
        container=name,
        image=registry.web_image,
        spec={"environment": {"DB_PASSWORD": secret, "API_TOKEN": secret, "PLAIN": "visible"}},
    )
    assert daemon.table.wait(op_id)["status"] == "completed"
    assert f"DB_PASSWORD={secret}" in docker_client.api.inspect_container(name)["Config"]["Env"]

    logs = json.dumps(daemon.table.logs(op_id), default=str)
    assert secret not in logs
    assert "DB_PASSWORD=***" in logs
    assert secret not in daemon.log_text()
    assert secret not in (daemon.table.row(op_id)["result"] or "")

    env = daemon.environment()
    for args in (["ops", "show", str(op_id)], ["ops", "logs", str(op_id)], ["ops", "list", "--json"]):
        output = run_cli(*args, env=env)
        assert output.returncode == 0, output.stderr
        assert secret not in output.stdout + output.stderr, args


def test_cli_submit_wait_reports_outcome(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    env = daemon.environment()
    ok = run_cli("submit", "start", f"{unique_prefix}-cliw", "--image", registry.web_image, "-e", "MODE=cli", "--wait", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "completed" in ok.stderr

    missing = f"{registry.open_address}/{unique_prefix}/none:1"
    failed = run_cli("submit", "start", f"{unique_prefix}-clif", "--image", missing, "--wait", env=env)
    assert failed.returncode == 1
    assert "not found" in failed.stderr
