"""A recreate interrupted by SIGKILL after each step, then resumed by a new daemon.

The first daemon runs with the test-only `DOCKWRIGHT_FAILPOINT`, which kills it right after a
step's journal write. A second daemon on the same SQLite file rescues the in-progress row at
start and claims it again. Each time the operation must end completed, or failed with a
rollback, with the real name held by a running container and its configuration intact.
"""

from __future__ import annotations

import json

import docker
import pytest

from tests.acceptance.test_recreate import APP2, build_apps, free_port, http_get, leftover_names, run_container
from tests.support.daemon import Daemon

STEPS = ["after_create", "after_stop", "after_rename_old", "after_rename_new", "after_start", "after_gate"]


def crash_at(make_daemon, failpoint: str, name: str, image: str) -> tuple[Daemon, int]:
    """Run a recreate on a daemon that SIGKILLs itself at `failpoint`; return the restarted daemon."""
    crashing = make_daemon(dockwright_failpoint=f"recreate.{failpoint}").start()
    op_id = crashing.table.insert(
        type="recreate", container=name, image=image, options={"settle_seconds": 0.5, "health_timeout": 20}
    )
    assert crashing.process is not None
    assert crashing.process.wait(timeout=60) == -9
    assert crashing.table.row(op_id)["status"] == "in_progress"
    return make_daemon().start(), op_id


@pytest.mark.parametrize("failpoint", STEPS)
def test_recreate_resumes_after_kill(
    make_daemon, docker_client: docker.DockerClient, unique_prefix: str, failpoint: str
) -> None:
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    name = f"{unique_prefix}-app"
    port = free_port()
    run_container(api, name, {
        "Image": apps.old,
        "Env": ["USER_VAR=x"],
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}},
    })

    daemon, op_id = crash_at(make_daemon, failpoint, name, apps.new)
    row = daemon.table.wait(op_id, timeout=90)
    assert row["status"] == "completed", row
    assert row["attempts"] == 2

    inspect = api.inspect_container(name)
    assert inspect["State"]["Running"] is True
    assert inspect["Config"]["Image"] == apps.new
    assert "USER_VAR=x" in inspect["Config"]["Env"]
    assert inspect["HostConfig"]["PortBindings"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert http_get(port) == f"two {unique_prefix}\n"
    assert leftover_names(api, name) == []
    assert json.loads(row["result"])["new_container_id"] == inspect["Id"]


@pytest.mark.parametrize("failpoint", ["after_rename_new", "after_start"])
def test_resumed_recreate_rolls_back(
    make_daemon, docker_client: docker.DockerClient, unique_prefix: str, failpoint: str
) -> None:
    """A resumed recreate whose new container exits rolls back to the original."""
    api = docker_client.api
    crashing = APP2.replace('ENTRYPOINT ["/entrypoint.sh"]', 'ENTRYPOINT ["sh", "-c", "sleep 1; exit 6"]')
    apps = build_apps(docker_client, unique_prefix, new_dockerfile=crashing)
    name = f"{unique_prefix}-app"
    old_id = run_container(api, name, {"Image": apps.old, "Env": ["USER_VAR=x"]})

    daemon, op_id = crash_at(make_daemon, failpoint, name, apps.new)
    row = daemon.table.wait(op_id, timeout=90)
    assert row["status"] == "failed"
    assert row["error"].startswith("rolled back: ")
    assert json.loads(row["result"])["rolled_back"] is True

    inspect = api.inspect_container(name)
    assert inspect["Id"] == old_id
    assert inspect["State"]["Running"] is True
    assert "USER_VAR=x" in inspect["Config"]["Env"]
    assert leftover_names(api, name) == []
