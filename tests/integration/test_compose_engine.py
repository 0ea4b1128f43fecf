"""Plans from the Compose parser, created on the real engine (API 1.41) and inspected.

These tests prove the engine accepts the create bodies and stores what the spec asked for.
They create containers without starting them, because the bodies are the subject here.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import docker
import docker.errors
import pytest

from controller.errors import SpecError
from controller.specs.compose import plan_compose_service, plan_service
from controller.specs.compose_file import load_compose_service, spec_hash
from controller.specs.plan import LABEL_SPEC_HASH, ContainerPlan
from tests.support.engine import Registry

pytestmark = pytest.mark.engine


def create_plan(api: docker.APIClient, plan: ContainerPlan) -> dict:
    """Create the plan's networks, volumes and container as the start operation would; inspect it."""
    for network in plan.networks:
        if network.external:
            continue
        api.create_network(
            network.name,
            driver=network.driver,
            options=network.driver_opts or None,
            ipam=network.ipam,
            internal=network.internal,
            labels=network.labels,
            enable_ipv6=network.enable_ipv6,
            attachable=network.attachable,
        )
    for volume in plan.volumes:
        if not volume.external:
            api.create_volume(volume.name, driver=volume.driver, driver_opts=volume.driver_opts or None, labels=volume.labels)

    container = api.create_container_from_config(plan.body, name=plan.name)
    for attachment in plan.connect:
        api.connect_container_to_network(
            container["Id"],
            attachment.name,
            aliases=list(attachment.aliases) or None,
            ipv4_address=attachment.ipv4_address,
            ipv6_address=attachment.ipv6_address,
        )
    return api.inspect_container(container["Id"])


def random_subnet() -> str:
    """Pick a /24 that other tests are unlikely to use at the same time."""
    return f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"


def test_rich_inline_plan(api: docker.APIClient, registry: Registry, unique_prefix: str, tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    spec = {
        "image": registry.base_image,
        "command": "sh -c 'sleep 60'",
        "entrypoint": ["/bin/busybox"],
        "environment": {"MODE": "demo", "DB_PASSWORD": "hunter2"},
        "labels": ["team=web"],
        "ports": ["127.0.0.1::8080", "127.0.0.1::53/udp", {"target": 9000, "host_ip": "127.0.0.1"}],
        "expose": ["9100"],
        "volumes": [
            f"{unique_prefix}-data:/data:ro",
            "/cache",
            f"{site}:/www:ro",
            {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": "16m", "mode": "1777"}},
            {"type": "volume", "source": f"{unique_prefix}-logs", "target": "/logs", "volume": {"nocopy": True}},
            {"type": "bind", "source": str(site), "target": "/site", "read_only": True},
        ],
        "tmpfs": ["/run:size=8m"],
        "networks": {f"{unique_prefix}-front": {"aliases": ["site"]}, f"{unique_prefix}-back": {"aliases": ["api"]}},
        "restart": "on-failure:3",
        "healthcheck": {"test": ["CMD", "true"], "interval": "1m30s", "timeout": "5s", "retries": 4, "start_period": "500ms"},
        "user": "1000:1000",
        "working_dir": "/app",
        "hostname": "web",
        "domainname": "example.test",
        "extra_hosts": ["db.local:10.0.0.5"],
        "dns": ["127.0.0.1"],
        "dns_search": "example.test",
        "cap_add": ["NET_ADMIN"],
        "cap_drop": ["MKNOD"],
        "devices": ["/dev/null:/dev/altnull:rw"],
        "read_only": True,
        "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 512},
        "stop_signal": "SIGINT",
        "stop_grace_period": "30s",
        "mem_limit": "64m",
        "memswap_limit": "128m",
        "mem_reservation": "32m",
        "cpus": 0.5,
        "cpu_shares": 512,
        "pids_limit": 100,
        "logging": {"driver": "json-file", "options": {"max-size": "10m"}},
        "init": True,
        "shm_size": "16m",
        "sysctls": {"net.core.somaxconn": 1024},
        "security_opt": ["no-new-privileges:true"],
        "tty": True,
        "stdin_open": True,
        "group_add": ["audio"],
    }
    plan = plan_service(spec, name=f"{unique_prefix}-web", image=None)
    inspected = create_plan(api, plan)
    config = inspected["Config"]
    host = inspected["HostConfig"]

    assert config["Cmd"] == ["sh", "-c", "sleep 60"]
    assert config["Entrypoint"] == ["/bin/busybox"]
    assert "MODE=demo" in config["Env"]
    assert "DB_PASSWORD=hunter2" in config["Env"]
    assert config["Labels"]["team"] == "web"
    assert config["Labels"][LABEL_SPEC_HASH] == spec_hash(plan)
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp", "9000/tcp", "9100/tcp"}
    assert config["Volumes"] == {"/cache": {}}
    assert config["Healthcheck"] == plan.body["Healthcheck"]
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/app"
    assert config["Hostname"] == "web"
    assert config["Domainname"] == "example.test"
    assert config["StopSignal"] == "SIGINT"
    assert config["StopTimeout"] == 30
    assert config["Tty"] is True
    assert config["OpenStdin"] is True

    for key, value in plan.body["HostConfig"].items():
        assert host[key] == value, key

    networks = inspected["NetworkSettings"]["Networks"]
    assert set(networks) == {f"{unique_prefix}-front", f"{unique_prefix}-back"}
    assert "api" in networks[f"{unique_prefix}-back"]["Aliases"]
    assert "site" in networks[f"{unique_prefix}-front"]["Aliases"]


def test_compose_file_plan(api: docker.APIClient, registry: Registry, unique_prefix: str, tmp_path: Path):
    subnet = random_subnet()
    address = subnet.replace(".0/24", ".10")
    project_dir = tmp_path / "shop"
    project_dir.mkdir()
    (project_dir / "app.env").write_text("FROM_FILE=1\nAPI_TOKEN=abc\n")
    (project_dir / "compose.yaml").write_text(
        textwrap.dedent(
            f"""\
            services:
              web:
                image: ${{IMAGE}}
                command: ["sleep", "60"]
                env_file: app.env
                networks:
                  front:
                    ipv4_address: {address}
                    aliases: [www]
                  back:
                volumes:
                  - data:/data
                  - ./conf:/conf:ro
            networks:
              front:
                ipam:
                  config:
                    - subnet: {subnet}
              back:
                internal: true
            volumes:
              data:
            """
        )
    )
    loaded = load_compose_service(project_dir / "compose.yaml", service="web", project=unique_prefix, environ={"IMAGE": registry.base_image})
    plan = plan_compose_service(loaded, name=None, image=None)
    inspected = create_plan(api, plan)

    assert inspected["Name"] == f"/{unique_prefix}-web-1"
    labels = inspected["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == unique_prefix
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert "FROM_FILE=1" in inspected["Config"]["Env"]
    assert inspected["HostConfig"]["Binds"] == [f"{unique_prefix}_data:/data", f"{project_dir / 'conf'}:/conf:ro"]

    networks = inspected["NetworkSettings"]["Networks"]
    front = networks[f"{unique_prefix}_front"]
    assert front["IPAMConfig"]["IPv4Address"] == address
    assert "www" in front["Aliases"]
    assert "web" in front["Aliases"]
    assert "web" in networks[f"{unique_prefix}_back"]["Aliases"]

    created = api.inspect_network(f"{unique_prefix}_back")
    assert created["Internal"] is True
    assert created["Labels"]["dockwright.created-by"] == "dockwright"
    assert created["Labels"]["com.docker.compose.network"] == "back"
    volume = api.inspect_volume(f"{unique_prefix}_data")
    assert volume["Labels"]["com.docker.compose.volume"] == "data"


def test_container_network_mode(api: docker.APIClient, registry: Registry, unique_prefix: str):
    base = plan_service({"image": registry.base_image, "command": ["sleep", "60"]}, name=f"{unique_prefix}-base", image=None)
    base_id = create_plan(api, base)["Id"]

    sidecar = plan_service(
        {"image": registry.base_image, "network_mode": f"container:{unique_prefix}-base"}, name=f"{unique_prefix}-sidecar", image=None
    )
    inspected = create_plan(api, sidecar)
    # The engine stores the other container by id.
    assert inspected["HostConfig"]["NetworkMode"] == f"container:{base_id}"


def test_disabled_healthcheck_and_empty_entrypoint(api: docker.APIClient, registry: Registry, unique_prefix: str):
    plan = plan_service(
        {"image": registry.web_image, "entrypoint": "", "command": ["/bin/busybox", "true"], "healthcheck": {"disable": True}},
        name=f"{unique_prefix}-plain",
        image=None,
    )
    inspected = create_plan(api, plan)
    # The engine merges the image's timings into the config, but NONE disables the check.
    assert inspected["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert inspected["Config"]["Entrypoint"] is None
    assert inspected["Config"]["Cmd"] == ["/bin/busybox", "true"]


def test_container_mode_ports_rejected(api: docker.APIClient, registry: Registry, unique_prefix: str):
    """The engine rejects ports beside a container network mode, and the parser does so first."""
    body = {
        "Image": registry.base_image,
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"NetworkMode": "container:x", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]}},
    }
    with pytest.raises(docker.errors.APIError) as caught:
        api.create_container_from_config(body, name=f"{unique_prefix}-conflict")
    assert caught.value.status_code == 400

    with pytest.raises(SpecError) as rejected:
        plan_service({"image": registry.base_image, "network_mode": "container:base-x", "ports": ["80"]}, name=f"{unique_prefix}-conflict", image=None)
    assert rejected.value.field == "spec.ports"
