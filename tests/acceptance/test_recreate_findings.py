"""Recreate cases that a user found broken, kept as regression tests against the real engine."""

from __future__ import annotations

import time

import docker

from tests.acceptance.test_recreate import FAST_GATE, SECOND, recreate, run_container
from tests.support.daemon import Daemon
from tests.support.images import build_image

# PID 1 of every image here ends at once on SIGTERM, so a stop takes no stop timeout.
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
IDLE_CMD = 'CMD ["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 0.2; done"]\n'


def _wait_all_finished(daemon: Daemon, *, timeout: float = 120.0) -> list[dict]:
    """Wait until no row is pending or in progress, child rows included; return every row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [dict(row) for row in daemon.table.execute("SELECT * FROM docker_operations ORDER BY id")]
        if all(row["status"] in ("completed", "failed", "cancelled") for row in rows):
            return rows
        time.sleep(0.2)
    raise TimeoutError(f"operations still unfinished after {timeout} s: {rows}")


def _build(client: docker.DockerClient, prefix: str, tag: str, lines: str) -> str:
    """Build the base image plus `lines` as `localhost:5001/PREFIX/TAG`, push it and return the id."""
    # The prefix label keeps the build off other tests' build cache.
    return build_image(client, f"localhost:5001/{prefix}/{tag}", f"LABEL dockwright.test.prefix={prefix}\n{lines}", push=True)


def test_autoremove_rollback_keeps_reference(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """After a rolled-back recreate of a `--rm` container, the container still names its tag."""
    api = docker_client.api
    reference = f"localhost:5001/{unique_prefix}/app:1"
    _build(docker_client, unique_prefix, "app:1", f"ENV VERSION=one\n{IDLE_CMD}")
    name = f"{unique_prefix}-rm"
    run_container(api, name, {"Image": reference, "HostConfig": {"AutoRemove": True}})

    # The tag moves to an image whose container exits at once, so the recreate rolls back.
    _build(docker_client, unique_prefix, "app:1", 'ENV VERSION=broken\nCMD ["sh", "-c", "exit 3"]\n')
    row = recreate(daemon, name)
    assert row["status"] == "failed"
    assert "rolled back" in row["error"]
    assert api.inspect_container(name)["State"]["Running"] is True
    # The tag now names the broken image, so the restored original runs its image by id and
    # keeps the reference in a label for the next recreate.
    assert api.inspect_container(name)["Config"]["Labels"]["dockwright.image-reference"] == reference

    # The tag moves again to a good image: a plain recreate must now run it.
    fixed_id = _build(docker_client, unique_prefix, "app:1", f"ENV VERSION=fixed\n{IDLE_CMD}")
    row = recreate(daemon, name)
    assert row["status"] == "completed"
    assert api.inspect_container(name)["Image"] == fixed_id


def test_partial_healthcheck_follows_new_test(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A container that set only a start period (`--health-start-period`) gets the new image's check command."""
    api = docker_client.api
    old = f"localhost:5001/{unique_prefix}/hc:1"
    new = f"localhost:5001/{unique_prefix}/hc:2"
    _build(docker_client, unique_prefix, "hc:1", f"RUN touch /app1-ok\nHEALTHCHECK --interval=1s --retries=2 CMD test -e /app1-ok\n{IDLE_CMD}")
    _build(docker_client, unique_prefix, "hc:2", f"RUN touch /app2-ok\nHEALTHCHECK --interval=1s --retries=2 CMD test -e /app2-ok\n{IDLE_CMD}")
    name = f"{unique_prefix}-hc"
    # What `docker run --health-start-period 3s` sends: no Test, so the engine takes the image's.
    run_container(api, name, {"Image": old, "Healthcheck": {"StartPeriod": 3 * SECOND}})

    row = recreate(daemon, name, image=new)
    assert row["status"] == "completed", row["error"]

    healthcheck = api.inspect_container(name)["Config"]["Healthcheck"]
    assert healthcheck["Test"] == ["CMD-SHELL", "test -e /app2-ok"]
    assert healthcheck["StartPeriod"] == 3 * SECOND


def test_recreate_by_id_is_rejected(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A recreate naming the container by id fails naming it, so it never races one by name."""
    api = docker_client.api
    reference = f"localhost:5001/{unique_prefix}/app:1"
    _build(docker_client, unique_prefix, "app:1", IDLE_CMD)
    name = f"{unique_prefix}-twice"
    container_id = run_container(api, name, {"Image": reference, "Cmd": IDLE})

    by_name = daemon.table.insert(type="recreate", container=name, options=FAST_GATE)
    by_id = daemon.table.insert(type="recreate", container=container_id[:12], options=FAST_GATE)
    first = daemon.table.wait(by_name, timeout=90)
    second = daemon.table.wait(by_id, timeout=90)

    assert first["status"] == "completed", first["error"]
    # Recreates run one at a time, so the id is already gone when its row runs; had it run
    # first, the row would have failed asking for the container's name.
    assert second["status"] == "failed"
    assert container_id[:12] in second["error"]
    assert api.inspect_container(name)["State"]["Running"] is True


def test_update_recreate_namespace_pair(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """Both containers of a `--network container:vpn` pair on one tag run the new image afterwards."""
    api = docker_client.api
    reference = f"localhost:5001/{unique_prefix}/app:1"
    _build(docker_client, unique_prefix, "app:1", f"ENV VERSION=one\n{IDLE_CMD}")
    vpn = f"{unique_prefix}-vpn"
    app = f"{unique_prefix}-app"
    vpn_id = run_container(api, vpn, {"Image": reference})
    # The app ignores SIGTERM, so its stop takes its 3 s stop timeout, and the vpn's recreate
    # stops the old vpn while the app's recreate still waits for that stop. Without the wait the
    # race is lost or won by chance.
    run_container(api, app, {
        "Image": reference,
        "Cmd": ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"],
        "StopTimeout": 3,
        "HostConfig": {"NetworkMode": f"container:{vpn_id}"},
    })

    # The tag moves in the registry only; the local tag still names the old image.
    old_id = docker_client.images.get(reference).id
    new_id = _build(docker_client, unique_prefix, "app:1", f"ENV VERSION=two\n{IDLE_CMD}")
    docker_client.images.get(old_id).tag(reference)

    update = daemon.table.insert(type="update_image", image=reference, options={"recreate": True})
    assert daemon.table.wait(update, timeout=90)["status"] == "completed"
    rows = _wait_all_finished(daemon)

    failed = [row for row in rows if row["status"] != "completed"]
    assert failed == []
    app_inspect = api.inspect_container(app)
    assert app_inspect["State"]["Running"] is True
    assert app_inspect["Image"] == new_id
    assert app_inspect["HostConfig"]["NetworkMode"] == "container:" + api.inspect_container(vpn)["Id"]


def test_recreate_cli_hides_secret_in_command(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A DB_PASSWORD value that the command also passes never reaches the operation's log rows."""
    api = docker_client.api
    reference = f"localhost:5001/{unique_prefix}/app:1"
    _build(docker_client, unique_prefix, "app:1", IDLE_CMD)
    name = f"{unique_prefix}-secret"
    secret = f"{unique_prefix}-pw-value"
    command = ["sh", "-c", f"trap 'exit 0' TERM; echo --db-password={secret} > /dev/null; while true; do sleep 0.2; done"]
    run_container(api, name, {"Image": reference, "Env": [f"DB_PASSWORD={secret}"], "Cmd": command})

    row = recreate(daemon, name)
    assert row["status"] == "completed", row["error"]

    logs = daemon.table.logs(row["id"])
    create_rows = [log for log in logs if "docker create" in (log["details"] or "")]
    assert create_rows != []
    leaked = [log["details"] for log in logs if secret in (log["message"] or "") + (log["details"] or "")]
    assert leaked == []


def test_recreate_by_id_asks_for_name(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A recreate row naming a container by its id fails asking for the name; nothing changes."""
    api = docker_client.api
    reference = f"localhost:5001/{unique_prefix}/app:1"
    _build(docker_client, unique_prefix, "app:1", IDLE_CMD)
    name = f"{unique_prefix}-byid"
    container_id = run_container(api, name, {"Image": reference, "Cmd": IDLE})

    row = daemon.table.wait(daemon.table.insert(type="recreate", container=container_id[:12], options=FAST_GATE), timeout=60)

    assert row["status"] == "failed"
    assert row["error"].startswith("container:")
    assert name in row["error"]
    assert api.inspect_container(name)["Id"] == container_id
