"""The `dockwright` command line as a subprocess, on a temporary SQLite database.

No Docker engine is needed: the commands here only read and write the tables. The one test
that runs the daemon points it at a socket path that does not exist, so the daemon pauses
its claims (the engine is unreachable) but still cancels pending rows.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from controller.specs.cli_render import render_create
from controller.specs.compose import plan_service

DOCKWRIGHT = str(Path(sys.executable).parent / "dockwright")
IMAGE = "localhost:5001/demo/web:1"
SECRET = "hunter2-secret-value"


class Cli:
    """Runs `dockwright` against one database file and reads that file with sqlite3."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database = workdir / "dockwright.db"

    def environment(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKWRIGHT_")}
        env["DOCKWRIGHT_DATABASE_URL"] = f"sqlite:///{self.database}"
        env.update(extra)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DOCKWRIGHT, *args],
            env=self.environment(**(env or {})),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; return its standard output."""
        completed = self.run(*args)
        assert completed.returncode == 0, f"dockwright {' '.join(args)} exited {completed.returncode}: {completed.stderr}"
        return completed.stdout

    def sql(self, statement: str, *params: Any) -> list[dict[str, Any]]:
        connection = sqlite3.connect(self.database, timeout=10)
        connection.row_factory = sqlite3.Row
        try:
            with connection:
                return [dict(row) for row in connection.execute(statement, params)]
        finally:
            connection.close()

    def row(self, op_id: int) -> dict[str, Any]:
        return self.sql("SELECT * FROM docker_operations WHERE id = ?", op_id)[0]

    def submit(self, *args: str) -> int:
        """Run `dockwright submit ARGS` and return the new operation id."""
        output = self.ok("submit", *args)
        assert output.startswith("submitted operation "), output
        return int(output.split()[2])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    tool = Cli(tmp_path)
    tool.ok("db", "upgrade")
    return tool


# db upgrade and submit


def test_db_upgrade_on_empty_file(tmp_path: Path) -> None:
    tool = Cli(tmp_path)

    first = tool.run("db", "upgrade")
    second = tool.run("db", "upgrade")
    tables = {row["name"] for row in tool.sql("SELECT name FROM sqlite_master WHERE type = 'table'")}

    assert first.returncode == 0, first.stderr
    assert "(was empty)" in first.stdout
    assert second.returncode == 0, second.stderr
    assert {"docker_operations", "docker_operation_logs"} <= tables


def test_submit_start_with_flags(cli: Cli) -> None:
    op_id = cli.submit(
        "start", "web", "--image", IMAGE,
        "-p", "127.0.0.1:18080:8080", "-p", "127.0.0.1:18443:8443",
        "-e", "MODE=demo", "-e", "EMPTY=",
        "--label", "team=core", "--restart", "unless-stopped", "--priority", "3",
        "--", "sleep", "60",
    )
    row = cli.row(op_id)

    assert row["type"] == "start"
    assert row["container"] == "web"
    assert row["image"] == IMAGE
    assert row["status"] == "pending"
    assert row["priority"] == 3
    assert row["options"] is None
    assert json.loads(row["spec"]) == {
        "ports": ["127.0.0.1:18080:8080", "127.0.0.1:18443:8443"],
        "environment": {"MODE": "demo", "EMPTY": ""},
        "labels": {"team": "core"},
        "restart": "unless-stopped",
        "command": ["sleep", "60"],
    }


def test_submit_start_options(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE, "--pull", "always", "--replace", "--max-attempts", "2")

    assert json.loads(cli.row(op_id)["options"]) == {"pull": "always", "replace": True, "max_attempts": 2}


def test_submit_start_compose_file(cli: Cli) -> None:
    compose = cli.workdir / "compose.yaml"
    compose.write_text("services:\n  web:\n    image: localhost:5001/demo/web:1\n")

    op_id = cli.submit("start", "--compose-file", "compose.yaml", "--service", "web", "--project", "demo")
    row = cli.row(op_id)

    assert row["container"] is None
    assert row["image"] is None
    # The daemon runs in another directory, so the path must be stored absolute.
    assert json.loads(row["spec"]) == {"compose_file": str(compose), "service": "web", "project": "demo"}


def test_submit_compose_file_needs_service(cli: Cli) -> None:
    completed = cli.run("submit", "start", "--compose-file", "compose.yaml")

    assert completed.returncode == 2
    assert "--compose-file needs --service" in completed.stderr
    assert cli.sql("SELECT * FROM docker_operations") == []


def test_submit_recreate(cli: Cli) -> None:
    op_id = cli.submit("recreate", "web", "--image", "localhost:5001/demo/web:2")
    row = cli.row(op_id)

    assert row["type"] == "recreate"
    assert row["container"] == "web"
    assert row["image"] == "localhost:5001/demo/web:2"
    assert row["spec"] is None


def test_submit_update_image(cli: Cli) -> None:
    op_id = cli.submit("update-image", "localhost:5001/demo/web:latest", "--recreate")
    row = cli.row(op_id)

    assert row["type"] == "update_image"
    assert row["image"] == "localhost:5001/demo/web:latest"
    assert row["container"] is None
    assert json.loads(row["options"]) == {"recreate": True}


def test_submit_rejects_bad_pair(cli: Cli) -> None:
    completed = cli.run("submit", "start", "web", "--image", IMAGE, "-e", "NOEQUALS")

    assert completed.returncode == 2
    assert "--env takes KEY=VALUE, got 'NOEQUALS'" in completed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "web", "--image", IMAGE, "--spec", "{bad"), "--spec '{bad' is not valid JSON"),
        (("start", "web", "--image", IMAGE, "--spec", "[1]"), "--spec must be a JSON object of Compose service keys, got '[1]'"),
        (("start", "web"), "invalid start operation, nothing submitted: spec: a start needs an image"),
        (("start", "web", "--image", "Not Valid"), "invalid start operation, nothing submitted: image: invalid image reference 'Not Valid'"),
        (("start", "web", "--image", IMAGE, "--max-attempts", "0"), "options.max_attempts: must be between 1 and 100, got 0"),
        (("update-image", "UPPER/Case"), "invalid update_image operation, nothing submitted: image: invalid image reference"),
    ],
)
def test_submit_rejects_invalid_row(cli: Cli, args: tuple[str, ...], message: str) -> None:
    completed = cli.run("submit", *args)

    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert cli.sql("SELECT * FROM docker_operations") == []


# ops list, show, logs


def test_ops_list_and_json(cli: Cli) -> None:
    first = cli.submit("start", "web", "--image", IMAGE)
    second = cli.submit("update-image", "localhost:5001/demo/web:latest")

    table = cli.ok("ops", "list")
    listed = json.loads(cli.ok("ops", "list", "--json"))
    filtered = json.loads(cli.ok("ops", "list", "--json", "--type", "start"))

    assert "web" in table
    assert "pending" in table
    assert [item["id"] for item in listed] == [second, first]
    assert listed[1]["type"] == "start"
    assert listed[1]["status"] == "pending"
    assert [item["id"] for item in filtered] == [first]


def test_ops_show(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE, "-e", "MODE=demo")

    shown = json.loads(cli.ok("ops", "show", str(op_id)))

    assert shown["id"] == op_id
    assert shown["spec"] == {"environment": {"MODE": "demo"}}
    assert shown["status"] == "pending"


def test_ops_show_unknown_id(cli: Cli) -> None:
    completed = cli.run("ops", "show", "999")

    assert completed.returncode == 1
    assert "no operation with id 999" in completed.stderr


def test_ops_logs(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE)
    cli.sql(
        "INSERT INTO docker_operation_logs (operation_id, level, message, details) VALUES (?, 'INFO', 'Creating container web', ?)",
        op_id,
        json.dumps({"call": "create_container_from_config", "cli": f"docker create --name web {IMAGE}", "duration_ms": 3.2}),
    )
    cli.sql("INSERT INTO docker_operation_logs (operation_id, level, message) VALUES (?, 'DEBUG', 'a detail')", op_id)

    output = cli.ok("ops", "logs", str(op_id))
    info_only = cli.ok("ops", "logs", str(op_id), "--level", "INFO")
    unknown = cli.run("ops", "logs", "999")

    assert "INFO    Creating container web" in output
    assert f"$ docker create --name web {IMAGE}" in output
    assert "a detail" in output
    assert "a detail" not in info_only
    assert unknown.returncode == 1
    assert "no operation with id 999" in unknown.stderr


def test_ops_logs_into_closed_pipe(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE)
    cli.sql(
        "INSERT INTO docker_operation_logs (operation_id, message) VALUES " + ", ".join(["(?, 'a line of the log')"] * 5000),
        *([op_id] * 5000),
    )
    process = subprocess.Popen(
        [DOCKWRIGHT, "ops", "logs", str(op_id)],
        env=cli.environment(),
        cwd=cli.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    process.stdout.close()  # the reader goes away, as `| head -1` does
    _, stderr = process.communicate(timeout=60)

    assert b"a line of the log" in first_line
    assert process.returncode == 1
    assert b"Traceback" not in stderr


def test_locked_database_message(cli: Cli) -> None:
    holder = sqlite3.connect(cli.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        completed = cli.run("cleanup", "--days", "0")
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert completed.returncode == 1
    assert f"database sqlite:///{cli.database} failed: database is locked" in completed.stderr
    assert "try again when that process is done" in completed.stderr


# ops cancel


def test_ops_cancel_finished(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE)
    cli.sql("UPDATE docker_operations SET status = 'completed', finished_at = '2026-01-01 00:00:00' WHERE id = ?", op_id)

    completed = cli.run("ops", "cancel", str(op_id))
    unknown = cli.run("ops", "cancel", "999")

    assert completed.returncode == 1
    assert f"operation {op_id} already ended as completed" in completed.stdout + completed.stderr
    assert cli.row(op_id)["cancel_requested"] == 0
    assert unknown.returncode == 1
    assert "no operation with id 999" in unknown.stderr


def test_ops_cancel_pending_by_daemon(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE)
    log_path = cli.workdir / "daemon.log"
    env = cli.environment(
        DOCKWRIGHT_DOCKER_HOST=f"unix://{cli.workdir / 'no-engine.sock'}",
        DOCKWRIGHT_LOG_FORMAT="json",
        DOCKWRIGHT_POLL_INTERVAL="0.2",
    )
    with log_path.open("wb") as log:
        daemon = subprocess.Popen([DOCKWRIGHT, "run"], env=env, cwd=cli.workdir, stdout=log, stderr=log)
    try:
        _wait_for(lambda: "controller.ready" in log_path.read_text(), waiting_for="the daemon to be ready", log_path=log_path)

        completed = cli.run("ops", "cancel", str(op_id))
        _wait_for(lambda: cli.row(op_id)["status"] == "cancelled", waiting_for=f"operation {op_id} to be cancelled", log_path=log_path)
    finally:
        daemon.send_signal(signal.SIGTERM)
        exit_code = daemon.wait(timeout=30)
    row = cli.row(op_id)

    assert completed.returncode == 0, completed.stderr
    assert f"cancellation of operation {op_id} requested (status pending)" in completed.stdout
    assert row["status"] == "cancelled"
    assert row["attempts"] == 0
    assert exit_code == 0


def _wait_for(condition: Any, *, waiting_for: str, log_path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {waiting_for}; daemon log:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)


# cleanup


def test_cleanup_days_zero(cli: Cli) -> None:
    finished = cli.submit("start", "web", "--image", IMAGE)
    pending = cli.submit("start", "db", "--image", IMAGE)
    cli.sql("UPDATE docker_operations SET status = 'failed', finished_at = '2026-01-01 00:00:00.000' WHERE id = ?", finished)
    for op_id in (finished, finished, pending):
        cli.sql("INSERT INTO docker_operation_logs (operation_id, message) VALUES (?, 'step')", op_id)

    output = cli.ok("cleanup", "--days", "0")
    remaining = cli.sql("SELECT operation_id FROM docker_operation_logs")

    assert "deleted 2 log rows" in output
    assert remaining == [{"operation_id": pending}]


# Secrets


def test_secrets_never_printed(cli: Cli) -> None:
    op_id = cli.submit("start", "web", "--image", IMAGE, "-e", f"DB_PASSWORD={SECRET}", "-e", "MODE=demo")
    plan = plan_service({"environment": {"DB_PASSWORD": SECRET, "MODE": "demo"}}, name="web", image=IMAGE)
    cli.sql(
        "INSERT INTO docker_operation_logs (operation_id, message, details) VALUES (?, 'Creating container web', ?)",
        op_id,
        json.dumps({"call": "create_container_from_config", "cli": render_create(plan)}),
    )

    stored = cli.row(op_id)["spec"]
    shown = cli.ok("ops", "show", str(op_id))
    listed = cli.ok("ops", "list", "--json")
    table = cli.ok("ops", "list")
    logs = cli.ok("ops", "logs", str(op_id))

    assert SECRET in stored  # the daemon needs the value itself
    assert SECRET not in shown
    assert "***" in shown
    assert SECRET not in listed
    assert SECRET not in table
    assert SECRET not in logs
    assert "DB_PASSWORD=***" in logs


# Configuration errors


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DOCKWRIGHT_CONCURRENCY": "0"}, "concurrency must be at least 1, got 0"),
        ({"DOCKWRIGHT_CONCURRENCY": "four"}, "DOCKWRIGHT_CONCURRENCY: concurrency must be of type int, got 'four'"),
        ({"DOCKWRIGHT_HTTP_BIND": "0.0.0.0:9321"}, "http_bind '0.0.0.0:9321' is not a loopback address"),
        ({"DOCKWRIGHT_POLL_INTERVAL": "-1"}, "poll_interval must be a positive number of seconds, got -1.0"),
    ],
)
def test_bad_config_exits_2(cli: Cli, env: dict[str, str], expected: str) -> None:
    completed = cli.run("ops", "list", env=env)

    assert completed.returncode == 2
    assert expected in completed.stderr
    assert "Traceback" not in completed.stderr


def test_bad_config_file_exits_2(cli: Cli) -> None:
    config = cli.workdir / "dockwright.yaml"
    config.write_text("concurency: 3\n")

    completed = cli.run("ops", "list", "--config", str(config))

    assert completed.returncode == 2
    assert "unknown setting 'concurency'" in completed.stderr
