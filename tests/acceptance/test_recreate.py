"""The recreate operation end to end: `dockwright run` as a subprocess, the real engine and the
local registry. Carry-over of image defaults and user values, ports, volumes, stop settings,
failed pulls, rollbacks, cancellation and the CLI.

The helpers here are shared by the other recreate acceptance modules.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import docker
import httpx
import pytest

from tests.support.daemon import Daemon, run_cli
from tests.support.engine import Registry
from tests.support.images import build_image
from tests.support.registry_writer import DOCKER_MANIFEST, RegistryWriter
from tests.support.network import free_port, http_get

WEB_IMAGE = Registry().web_image
SECOND = 1_000_000_000
# Short gate settings, so a test waits about one healthcheck interval of the images below.
FAST_GATE = {"settle_seconds": 0.5, "health_timeout": 20}

# The prefix label comes first so that no build step is cached across tests: another test's
# cleanup could otherwise remove a parent image that this build reuses.

APP1 = """FROM {web}
LABEL dockwright.test.prefix={prefix}
ENV APP_MODE=one
LABEL tier=one
COPY app1 /app1
COPY index.html /www/index.html
ENTRYPOINT ["/app1"]
CMD ["-p", "8080", "-h", "/www"]
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD wget -q -O /dev/null http://127.0.0.1:8080/
VOLUME /data
"""

APP2 = """FROM {web}
LABEL dockwright.test.prefix={prefix}
ENV APP_MODE=two
LABEL tier=two
COPY entrypoint.sh /entrypoint.sh
COPY index.html /www/index.html
ENTRYPOINT ["/entrypoint.sh"]
CMD ["-p", "8080", "-h", "/www"]
HEALTHCHECK --interval=1s --timeout=15s --retries=4 CMD wget -q -O /dev/null http://127.0.0.1:8080/
VOLUME /data
"""

# Runs the web image's server, which stops at once on SIGTERM.
SERVE = "#!/bin/sh\nexec /bin/serve \"$@\"\n"


@dataclass(frozen=True)
class Apps:
    """Two versions of a test app pushed to the open registry under the test's prefix."""

    old: str
    new: str


def build_apps(client: docker.DockerClient, prefix: str, *, new_dockerfile: str | None = None) -> Apps:
    """Build and push `app:1` and `app:2`; `new_dockerfile` replaces app:2's Dockerfile."""
    old = f"localhost:5001/{prefix}/app:1"
    new = f"localhost:5001/{prefix}/app:2"
    build_image(client, old, APP1.format(web=WEB_IMAGE, prefix=prefix), {"app1": SERVE, "index.html": f"one {prefix}\n"}, push=True)
    dockerfile = (new_dockerfile or APP2).format(web=WEB_IMAGE, prefix=prefix)
    build_image(client, new, dockerfile, {"entrypoint.sh": SERVE, "index.html": f"two {prefix}\n"}, push=True)
    return Apps(old=old, new=new)


def run_container(api: docker.APIClient, name: str, body: dict[str, Any], *, start: bool = True) -> str:
    """Create a container through the API, as another tool would, start it and return its id."""
    container_id = api.create_container_from_config(body, name=name)["Id"]
    if start:
        api.start(container_id)
    return container_id


def exec_output(api: docker.APIClient, container: str, *command: str) -> str:
    exec_id = api.exec_create(container, list(command))
    return api.exec_start(exec_id).decode()


def recreate(daemon: Daemon, name: str, *, image: str | None = None, timeout: float = 90.0, **options: Any) -> dict[str, Any]:
    """Insert a recreate row with the fast gate settings and wait for its end; return the row."""
    columns: dict[str, Any] = {"type": "recreate", "container": name, "options": {**FAST_GATE, **options}}
    if image:
        columns["image"] = image
    op_id = daemon.table.insert(**columns)
    return daemon.table.wait(op_id, timeout=timeout)


def leftover_names(api: docker.APIClient, name: str) -> list[str]:
    """Return the names of temporary or set-aside containers a recreate of `name` left."""
    names = [entry["Names"][0].lstrip("/") for entry in api.containers(all=True, filters={"name": name})]
    return [found for found in names if found.startswith(f"{name}-dw")]


def test_recreate_follows_image_keeps_user_config(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """Image env, labels, entrypoint and healthcheck follow app:2; user values, ports and data stay."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    name = f"{unique_prefix}-app"
    port = free_port()
    old_id = run_container(api, name, {
        "Image": apps.old,
        "Env": ["USER_VAR=x"],
        "Labels": {"owner": "payments"},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}},
    })
    exec_output(api, name, "sh", "-c", "echo kept > /data/file.txt")
    assert http_get(port) == f"one {unique_prefix}\n"

    row = recreate(daemon, name, image=apps.new)
    assert row["status"] == "completed", row

    inspect = api.inspect_container(name)
    config = inspect["Config"]
    assert inspect["State"]["Running"] is True
    assert inspect["Id"] != old_id
    assert config["Image"] == apps.new
    assert "APP_MODE=two" in config["Env"]  # R3
    assert "USER_VAR=x" in config["Env"]
    assert config["Labels"]["tier"] == "two"
    assert config["Labels"]["owner"] == "payments"
    assert config["Entrypoint"] == ["/entrypoint.sh"]  # R4
    assert config["Healthcheck"]["Timeout"] == 15 * SECOND  # R5
    assert config["Healthcheck"]["Retries"] == 4
    assert inspect["HostConfig"]["PortBindings"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert exec_output(api, name, "cat", "/data/file.txt") == "kept\n"  # R11
    assert http_get(port) == f"two {unique_prefix}\n"

    result = json.loads(row["result"])
    assert result["old_container_id"] == old_id
    assert result["new_container_id"] == inspect["Id"]
    assert result["old_image_id"] == docker_client.images.get(apps.old).id
    assert result["new_image_id"] == docker_client.images.get(apps.new).id
    assert 0 < result["downtime_seconds"] < 5
    assert result["rolled_back"] is False
    assert result["journal"]["snapshot"]["container"]["Id"] == old_id
    assert leftover_names(api, name) == []
    with pytest.raises(docker.errors.NotFound):
        api.inspect_container(old_id)


def test_recreate_keeps_user_set_values(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """A user-set env value, label and healthcheck, and a disabled healthcheck, are kept exactly."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    own_check = {"Test": ["CMD", "true"], "Interval": SECOND, "Timeout": 7 * SECOND, "Retries": 5}
    custom = f"{unique_prefix}-custom"
    disabled = f"{unique_prefix}-disabled"
    run_container(api, custom, {
        "Image": apps.old, "Env": ["APP_MODE=custom"], "Labels": {"tier": "custom"}, "Healthcheck": own_check,
    })
    run_container(api, disabled, {"Image": apps.old, "Healthcheck": {"Test": ["NONE"]}})

    first = daemon.table.insert(type="recreate", container=custom, image=apps.new, options=FAST_GATE)
    second = daemon.table.insert(type="recreate", container=disabled, image=apps.new, options=FAST_GATE)
    assert daemon.table.wait(first, timeout=90)["status"] == "completed"
    assert daemon.table.wait(second, timeout=90)["status"] == "completed"

    config = api.inspect_container(custom)["Config"]
    assert "APP_MODE=custom" in config["Env"]
    assert "APP_MODE=two" not in config["Env"]
    assert config["Labels"]["tier"] == "custom"
    assert config["Healthcheck"] == own_check
    assert api.inspect_container(disabled)["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "APP_MODE=two" in api.inspect_container(disabled)["Config"]["Env"]


def test_recreate_port_without_expose(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """R6: a port binding with no EXPOSE in the image and no ExposedPorts is kept, host IP included."""
    api = docker_client.api
    image = f"localhost:5001/{unique_prefix}/plain:1"
    build_image(
        docker_client,
        image,
        'COPY serve /bin/serve\nCOPY index.html /www/index.html\nENTRYPOINT ["/bin/serve", "-p", "5000", "-h", "/www"]\n',
        {"serve": "#!/bin/sh\nhttpd -f \"$@\" &\ntrap 'kill $!; exit 0' TERM\nwait\n", "index.html": "plain\n"},
        push=True,
    )
    assert not docker_client.images.get(image).attrs["Config"].get("ExposedPorts")
    name = f"{unique_prefix}-plain"
    port = free_port()
    binding = [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    run_container(api, name, {"Image": image, "HostConfig": {"PortBindings": {"5000/tcp": binding}}})
    # Engine 20.10 publishes no binding whose port is missing from ExposedPorts.
    assert api.inspect_container(name)["NetworkSettings"]["Ports"] == {}

    row = recreate(daemon, name)
    assert row["status"] == "completed", row
    inspect = api.inspect_container(name)
    assert inspect["HostConfig"]["PortBindings"] == {"5000/tcp": binding}
    assert inspect["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert http_get(port) == "plain\n"


def test_recreate_stop_signal_and_timeout(
    make_daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """R9: the old container gets its own stop signal and all of its stop timeout, longer than the HTTP timeout."""
    api = docker_client.api
    image = f"localhost:5001/{unique_prefix}/slowstop:1"
    # PID 1 ignores SIGTERM; on SIGUSR1 it takes 6 s to shut down cleanly, and records both.
    script = (
        "#!/bin/sh\n"
        "trap '' TERM\n"
        "trap 'echo usr1 >> /state/log; sleep 6; echo clean >> /state/log; exit 0' USR1\n"
        "while true; do sleep 1 & wait $!; done\n"
    )
    build_image(docker_client, image, 'COPY run /run.sh\nENTRYPOINT ["/run.sh"]\n', {"run": script}, push=True)
    name = f"{unique_prefix}-slowstop"
    volume = f"{unique_prefix}-state"
    run_container(api, name, {
        "Image": image, "StopSignal": "SIGUSR1", "StopTimeout": 30,
        "HostConfig": {"Binds": [f"{volume}:/state"]},
    })
    # An engine HTTP timeout of 3 s: a stop that used it would fail after 3 s.
    daemon = make_daemon(dockwright_docker_timeout="3").start()

    row = recreate(daemon, name, timeout=60)
    assert row["status"] == "completed", row
    config = api.inspect_container(name)["Config"]
    assert config["StopSignal"] == "SIGUSR1"
    assert config["StopTimeout"] == 30
    assert exec_output(api, name, "cat", "/state/log") == "usr1\nclean\n"
    assert json.loads(row["result"])["downtime_seconds"] >= 6


def test_failed_pull_changes_nothing(
    daemon: Daemon, docker_client: docker.DockerClient, registry: Registry, unique_prefix: str
) -> None:
    """R10: a new manifest with a missing layer blob fails the pull; the old container runs on untouched."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    name = f"{unique_prefix}-app"
    old_id = run_container(api, name, {"Image": apps.old})

    # Make app:2 the image behind app:1's tag, then delete its own top layer from the registry.
    docker_client.images.get(apps.new).tag(apps.old)
    docker_client.images.push(apps.old)
    repository = f"{unique_prefix}/app"
    with RegistryWriter(registry.url(registry.open_address)) as writer:
        _, manifest = writer.get_manifest(repository, "1", [DOCKER_MANIFEST])
    top_layer = manifest["layers"][-1]["digest"]
    deleted = httpx.delete(f"{registry.url(registry.open_address)}/v2/{repository}/blobs/{top_layer}", timeout=10)
    assert deleted.status_code == 202
    api.remove_image(apps.old, force=True)
    api.remove_image(apps.new, force=True)

    row = recreate(daemon, name)
    assert row["status"] == "failed"
    assert "unknown blob" in row["error"]
    assert "was not changed" in row["error"]
    inspect = api.inspect_container(name)
    assert inspect["Id"] == old_id
    assert inspect["State"]["Running"] is True
    assert leftover_names(api, name) == []


def test_exiting_command_rolls_back(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """A new image whose command exits at once: rolled back, the original runs under its name."""
    api = docker_client.api
    crashing = APP2.replace('ENTRYPOINT ["/entrypoint.sh"]', 'ENTRYPOINT ["sh", "-c", "echo cannot start; exit 3"]')
    apps = build_apps(docker_client, unique_prefix, new_dockerfile=crashing)
    name = f"{unique_prefix}-app"
    port = free_port()
    old_id = run_container(api, name, {
        "Image": apps.old,
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}},
    })

    row = recreate(daemon, name, image=apps.new)
    assert row["status"] == "failed"
    assert row["error"].startswith("rolled back: ")
    assert "exited with code 3" in row["error"]
    assert "cannot start" in row["error"]
    result = json.loads(row["result"])
    assert result["rolled_back"] is True
    assert result["old_container_id"] == old_id

    inspect = api.inspect_container(name)
    assert inspect["Id"] == old_id
    assert inspect["State"]["Running"] is True
    assert inspect["Config"]["Image"] == apps.old
    assert http_get(port) == f"one {unique_prefix}\n"
    assert leftover_names(api, name) == []


def test_unhealthy_image_rolls_back(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """A new image whose healthcheck never passes: rolled back, the original runs under its name."""
    api = docker_client.api
    failing = APP2.replace("--retries=4 CMD wget -q -O /dev/null http://127.0.0.1:8080/", "--retries=2 CMD false")
    apps = build_apps(docker_client, unique_prefix, new_dockerfile=failing)
    name = f"{unique_prefix}-app"
    old_id = run_container(api, name, {"Image": apps.old})

    row = recreate(daemon, name, image=apps.new, health_timeout=8)
    assert row["status"] == "failed"
    assert row["error"].startswith("rolled back: ")
    assert "unhealthy" in row["error"]
    inspect = api.inspect_container(name)
    assert inspect["Id"] == old_id
    assert inspect["State"]["Running"] is True
    assert inspect["Config"]["Image"] == apps.old
    assert leftover_names(api, name) == []


def test_auto_remove_original_restored_on_rollback(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """An AutoRemove original, deleted by the engine on its stop, is created again with its data."""
    api = docker_client.api
    crashing = APP2.replace('ENTRYPOINT ["/entrypoint.sh"]', 'ENTRYPOINT ["sh", "-c", "exit 4"]')
    apps = build_apps(docker_client, unique_prefix, new_dockerfile=crashing)
    name = f"{unique_prefix}-app"
    old_id = run_container(api, name, {"Image": apps.old, "Env": ["USER_VAR=x"], "HostConfig": {"AutoRemove": True}})
    exec_output(api, name, "sh", "-c", "echo kept > /data/file.txt")

    row = recreate(daemon, name, image=apps.new)
    assert row["status"] == "failed"
    assert "rolled back" in row["error"]
    inspect = api.inspect_container(name)
    assert inspect["Id"] != old_id
    assert inspect["State"]["Running"] is True
    assert inspect["Config"]["Image"] == apps.old
    assert "USER_VAR=x" in inspect["Config"]["Env"]
    assert inspect["HostConfig"]["AutoRemove"] is True
    assert exec_output(api, name, "cat", "/data/file.txt") == "kept\n"


def test_cancel_during_gate_restores_original(
    daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str
) -> None:
    """A cancellation while the new container is in its health gate brings the original back."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    name = f"{unique_prefix}-app"
    old_id = run_container(api, name, {"Image": apps.old})

    op_id = daemon.table.insert(
        type="recreate", container=name, image=apps.new, options={"settle_seconds": 60, "health_timeout": 60}
    )
    deadline = time.monotonic() + 60
    while "Health gate" not in (daemon.table.row(op_id)["message"] or ""):
        assert time.monotonic() < deadline, daemon.table.row(op_id)
        time.sleep(0.1)
    assert api.inspect_container(name)["Id"] != old_id
    daemon.table.execute("UPDATE docker_operations SET cancel_requested = 1 WHERE id = ?", op_id)

    row = daemon.table.wait(op_id, timeout=30)
    assert row["status"] == "cancelled"
    assert "rolled back" in row["message"]
    inspect = api.inspect_container(name)
    assert inspect["Id"] == old_id
    assert inspect["State"]["Running"] is True
    assert json.loads(row["result"])["rolled_back"] is True
    assert leftover_names(api, name) == []


def test_cli_submit_recreate_wait(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """`dockwright submit recreate NAME --image REF --wait` exits 0 once the recreate completes."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    name = f"{unique_prefix}-app"
    run_container(api, name, {"Image": apps.old})

    output = run_cli("submit", "recreate", name, "--image", apps.new, "--wait", env=daemon.environment())
    assert output.returncode == 0, output.stderr
    assert "recreated" in output.stderr
    assert api.inspect_container(name)["Config"]["Image"] == apps.new

    missing = run_cli("submit", "recreate", f"{unique_prefix}-none", "--wait", env=daemon.environment())
    assert missing.returncode == 1
    assert "not found" in missing.stderr
