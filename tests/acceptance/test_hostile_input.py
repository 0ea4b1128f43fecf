"""Hostile and careless input: each defect that a new user found, kept as a regression test.

Rows are written with plain SQL and the CLI runs as a subprocess, as in the other acceptance
tests. Each test states the behaviour that a user relies on.
"""

from __future__ import annotations

import json
import resource
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Callable

import docker

from tests.support.daemon import Daemon, run_cli
from tests.support.engine import Registry

# An address space large enough for the daemon's normal work, so that reading an endless
# file raises MemoryError inside the daemon instead of exhausting the machine's memory.
DAEMON_ADDRESS_SPACE_BYTES = 3 * 1024**3


def idle_environment(make_daemon: Callable[..., Daemon], tmp_path: Path) -> dict[str, str]:
    """Return the environment of a daemon that is never started, for CLI-only checks."""
    workdir = tmp_path / "cli"
    workdir.mkdir()
    return make_daemon(workdir).environment()


def unused_port() -> int:
    """Return a loopback TCP port that nothing listens on, for an unreachable registry."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_instance(daemon: Daemon) -> str:
    """Return the instance id that the daemon writes into its claims."""
    return daemon.wait_for_event("controller.ready")["instance"]

def test_endless_compose_file_fails_by_name(daemon: Daemon) -> None:
    """A compose_file that never ends fails naming the key; the daemon keeps serving."""
    assert daemon.process is not None
    limit = (DAEMON_ADDRESS_SPACE_BYTES, DAEMON_ADDRESS_SPACE_BYTES)
    resource.prlimit(daemon.process.pid, resource.RLIMIT_AS, limit)

    op_id = daemon.table.insert(type="start", spec={"compose_file": "/dev/zero", "service": "web"})
    row = daemon.table.wait(op_id, timeout=120)

    assert row["status"] == "failed"
    assert "spec.compose_file" in row["error"]
    assert "/dev/zero" in row["error"]
    assert daemon.process.poll() is None


def test_secret_of_wrong_type_stays_hidden(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """An environment secret that is a mapping fails without its value in the error or logs."""
    secret = f"s3cr3t-{unique_prefix}"
    op_id = daemon.table.insert(
        type="start",
        container=f"{unique_prefix}-wrongtype",
        image=registry.web_image,
        spec={"environment": {"DB_PASSWORD": {"value": secret}}},
    )
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert "spec.environment.DB_PASSWORD" in row["error"]
    assert secret not in row["error"]
    assert secret not in json.dumps(daemon.table.logs(op_id), default=str)
    assert secret not in daemon.log_text()


def test_secret_in_container_output_stays_hidden(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """A container that prints its environment and exits fails without the secret anywhere."""
    secret = f"s3cr3t-{unique_prefix}"
    op_id = daemon.table.insert(
        type="start",
        container=f"{unique_prefix}-printenv",
        image=registry.web_image,
        spec={"environment": {"API_TOKEN": secret}, "entrypoint": ["/bin/sh", "-c", "env; exit 1"]},
        # Without a settle time the check can come before the shell has exited.
        options={"settle_seconds": 1},
    )
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert "exited" in row["error"]
    assert secret not in row["error"]
    assert secret not in json.dumps(daemon.table.logs(op_id), default=str)
    assert secret not in daemon.log_text()


def test_show_hides_secret_of_invalid_spec(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """`ops show` and `ops list --json` never print a secret, even from a spec that is not JSON."""
    secret = f"s3cr3t-{unique_prefix}"
    spec_text = '{"environment": {"DB_PASSWORD": "' + secret + '"},}'
    op_id = daemon.table.insert(
        type="start", container=f"{unique_prefix}-badjson", image=registry.web_image, spec=spec_text
    )
    row = daemon.table.wait(op_id)
    assert row["status"] == "failed"

    env = daemon.environment()
    show = run_cli("ops", "show", str(op_id), env=env)
    listing = run_cli("ops", "list", "--json", env=env)

    assert show.returncode == 0, show.stderr
    assert secret not in show.stdout
    assert listing.returncode == 0, listing.stderr
    assert secret not in listing.stdout


def test_compose_yaml_error_hides_secret(daemon: Daemon, unique_prefix: str, tmp_path: Path) -> None:
    """A compose file with a YAML error on a secret's line fails without quoting the secret."""
    secret = f"s3cr3t-{unique_prefix}"
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(
        "services:\n"
        "  web:\n"
        "    image: localhost:5001/dockwright-test/web:1\n"
        "    environment:\n"
        f"      DB_PASSWORD: {secret}: trailing\n"
    )
    op_id = daemon.table.insert(type="start", spec={"compose_file": str(compose_file), "service": "web"})
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert "spec.compose_file" in row["error"]
    assert secret not in row["error"]
    assert secret not in daemon.log_text()


def test_text_cancel_flag_does_not_strand_row(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """A cancel_requested of 'false' is rejected at insert, or the row still ends by name."""
    try:
        op_id = daemon.table.insert(
            type="start",
            container=f"{unique_prefix}-cancelflag",
            image=registry.web_image,
            cancel_requested="false",
        )
    except sqlite3.IntegrityError as exc:
        assert "cancel_requested" in str(exc)
        return
    row = daemon.table.wait(op_id, timeout=30)

    assert row["status"] in ("completed", "failed")
    if row["status"] == "failed":
        assert "cancel_requested" in row["error"]


def test_cleanup_rejects_negative_days(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """`cleanup --days -1` is a usage error and deletes nothing."""
    op_id = daemon.table.insert(type="start", container=f"{unique_prefix}-keeplogs", image=registry.web_image)
    assert daemon.table.wait(op_id)["status"] == "completed"
    logs_before = len(daemon.table.logs(op_id))

    output = run_cli("cleanup", "--days", "-1", env=daemon.environment())

    assert output.returncode == 2, output.stdout
    assert len(daemon.table.logs(op_id)) == logs_before


def test_environment_name_with_equals_fails(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """{"A=B": "x"} fails naming the key instead of setting A to "B=x"."""
    op_id = daemon.table.insert(
        type="start",
        container=f"{unique_prefix}-eqname",
        image=registry.web_image,
        spec={"environment": {"A=B": "x"}},
    )
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert "spec.environment" in row["error"]
    assert "A=B" in row["error"]


def test_cli_database_in_missing_directory(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """`ops list` on a database path whose directory is missing names the path, without a traceback."""
    env = idle_environment(make_daemon, tmp_path)
    missing = tmp_path / "no-such-dir" / "dockwright.db"
    output = run_cli("ops", "list", "--database-url", f"sqlite:///{missing}", env=env)

    assert output.returncode in (1, 2)
    assert "Traceback" not in output.stderr
    assert str(missing) in output.stderr


def test_cli_config_directory(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """`--config DIR` is a usage error that names the path."""
    env = idle_environment(make_daemon, tmp_path)
    output = run_cli("ops", "list", "--config", str(tmp_path), env=env)

    assert output.returncode == 2
    assert "Traceback" not in output.stderr
    assert str(tmp_path) in output.stderr


def test_ops_show_leaves_missing_database_alone(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """`ops show` on a database file that does not exist reports it and creates nothing."""
    env = idle_environment(make_daemon, tmp_path)
    missing = tmp_path / "typo.db"
    output = run_cli("ops", "show", "1", "--database-url", f"sqlite:///{missing}", env=env)

    assert output.returncode == 1
    assert not missing.exists()
    assert str(missing) in output.stderr


def test_invalid_ipv4_address_names_key(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """An invalid ipv4_address fails naming spec.networks and the value, before Docker is called."""
    op_id = daemon.table.insert(
        type="start",
        container=f"{unique_prefix}-ipv4",
        image=registry.web_image,
        spec={"networks": {f"{unique_prefix}-net": {"ipv4_address": "999.1.1.1"}}},
    )
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert "spec.networks" in row["error"]
    assert "999.1.1.1" in row["error"]



def test_second_daemon_through_symlink_exits(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """A second daemon that reaches the same SQLite file through a symlink exits with an error."""
    first = make_daemon(tmp_path / "first").start()
    link = tmp_path / "link.db"
    link.symlink_to(first.database)

    second = make_daemon(tmp_path / "second", dockwright_database_url=f"sqlite:///{link}").start(wait=False)
    assert second.process is not None
    try:
        returncode = second.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        returncode = None

    assert returncode == 1
    assert "already runs" in second.log_text()


def test_text_priority_fails_by_name(daemon: Daemon, registry: Registry, unique_prefix: str) -> None:
    """A priority of 'low' is rejected at insert, or fails naming the column instead of running first."""
    try:
        op_id = daemon.table.insert(
            type="start", container=f"{unique_prefix}-textprio", image=registry.web_image, priority="low"
        )
    except sqlite3.IntegrityError as exc:
        assert "priority" in str(exc)
        return
    row = daemon.table.wait(op_id)

    assert row["status"] == "failed"
    assert "priority" in row["error"]


def test_row_reset_to_pending_does_not_block_shutdown(
    make_daemon: Callable[..., Daemon], unique_prefix: str
) -> None:
    """A running row that a service sets back to pending still lets SIGTERM end the daemon in time."""
    daemon = make_daemon(dockwright_shutdown_grace="5").start()
    unreachable = f"127.0.0.1:{unused_port()}/{unique_prefix}/none:1"
    op_id = daemon.table.insert(
        type="start", container=f"{unique_prefix}-reset", image=unreachable, options={"max_attempts": 50}
    )
    daemon.wait_for_event("operation.retry", operation_id=op_id)
    daemon.table.execute("UPDATE docker_operations SET status = 'pending', claimed_by = NULL WHERE id = ?", op_id)
    daemon.wait_for_event("operation.claimed", operation_id=op_id, message=f"Claimed by {daemon_instance(daemon)} (claim 2)")

    returncode = daemon.stop(timeout=30)

    assert returncode == 0
    assert daemon.table.row(op_id)["status"] == "pending"



def test_unstartable_container_is_removed(
    daemon: Daemon, registry: Registry, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A container the engine creates but cannot start is removed, so a fixed resubmission works."""
    name = f"{unique_prefix}-nodevice"
    bad = daemon.table.insert(
        type="start", container=name, image=registry.web_image, spec={"devices": ["/dev/dockwright-missing-device"]}
    )
    bad_row = daemon.table.wait(bad)
    assert bad_row["status"] == "failed"
    assert "/dev/dockwright-missing-device" in bad_row["error"]
    assert docker_client.api.containers(all=True, filters={"name": name}) == []

    fixed = daemon.table.insert(type="start", container=name, image=registry.web_image)
    assert daemon.table.wait(fixed)["status"] == "completed"


def test_misspelled_setting_is_reported(make_daemon: Callable[..., Daemon], docker_client: docker.DockerClient) -> None:
    daemon = make_daemon(dockwright_concurency="8").start()

    event = daemon.wait_for_event("config.unknown_variable")
    assert "DOCKWRIGHT_CONCURENCY" in event["message"]
