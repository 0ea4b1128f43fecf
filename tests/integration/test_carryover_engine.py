"""The recreate carry-over rules against the real engine.

Each test creates containers from `app:1`, builds a plan for `app:2` from their real inspect
output, creates the replacement from `plan.body` exactly as the recreate operation will, connects
`plan.connect`, and checks the replacement's inspect output. Where the replacement would take the
original's static IP, MAC or host port, the original is stopped first.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from controller.specs.carryover import plan_recreate
from controller.specs.plan import ContainerPlan
from tests.support.images import build_image

# PID 1 of both images. It exits on the usual stop signals, so a stop never waits for the stop timeout.
APP_SCRIPT = "#!/bin/sh\ntrap 'exit 0' TERM INT USR1\nsleep 600 &\nwait\n"

APP1 = """ENV APP_MODE=one
LABEL tier=one
COPY app1 /app1
ENTRYPOINT ["/app1"]
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD true
VOLUME /data
STOPSIGNAL SIGUSR1
"""

APP2 = """ENV APP_MODE=two
LABEL tier=two
COPY entrypoint.sh /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
HEALTHCHECK --interval=1s --timeout=15s --retries=4 CMD true
VOLUME /data
"""

SECOND = 1_000_000_000


class Apps:
    """The two image versions of one test and the objects the test created."""

    def __init__(self, client: docker.DockerClient, prefix: str) -> None:
        self.client = client
        self.api: docker.APIClient = client.api
        self.prefix = prefix
        self.old_ref = f"localhost:5001/{prefix}/app:1"
        self.new_ref = f"localhost:5001/{prefix}/app:2"
        build_image(client, self.old_ref, APP1, {"app1": APP_SCRIPT})
        build_image(client, self.new_ref, APP2, {"entrypoint.sh": APP_SCRIPT})
        self.containers: list[str] = []
        self.anonymous_volumes: set[str] = set()

    def run(self, name: str, body: dict[str, Any], *, start: bool = True) -> str:
        """Create (and start) a container from `app:1` named PREFIX-NAME and return its id."""
        body = {"Image": self.old_ref, **body}
        container_id = self.api.create_container_from_config(body, name=f"{self.prefix}-{name}")["Id"]
        self.containers.append(container_id)
        if start:
            self.api.start(container_id)
        return container_id

    def plan(self, container_id: str, *, network_container: str | None = None) -> ContainerPlan:
        """Plan the replacement of a container with `app:2` from real inspect output."""
        container = self.api.inspect_container(container_id)
        for mount in container["Mounts"]:
            if mount["Type"] == "volume" and len(mount["Name"]) == 64:
                self.anonymous_volumes.add(mount["Name"])
        return plan_recreate(
            container,
            self.api.inspect_image(container["Image"]),
            self.api.inspect_image(self.new_ref),
            name=f"{container['Name'].lstrip('/')}-new",
            image_ref=self.new_ref,
            network_container=network_container,
        )

    def create(self, plan: ContainerPlan, *, start: bool = True) -> dict[str, Any]:
        """Create the replacement from the plan, connect its networks and start it. Return its inspect output."""
        container_id = self.api.create_container_from_config(plan.body, name=plan.name)["Id"]
        self.containers.append(container_id)
        for attachment in plan.connect:
            self.api.connect_container_to_network(
                container_id,
                attachment.name,
                aliases=list(attachment.aliases) or None,
                ipv4_address=attachment.ipv4_address,
                ipv6_address=attachment.ipv6_address,
            )
        if start:
            self.api.start(container_id)
        return self.api.inspect_container(container_id)

    def create_network(self, name: str, *, subnet: bool = False) -> str:
        """Create the network PREFIX-NAME, on a random free /24 subnet if `subnet`, and return the subnet's first three octets."""
        full_name = f"{self.prefix}-{name}"
        if not subnet:
            self.api.create_network(full_name)
            return ""

        for _ in range(20):
            base = f"10.{random.randint(64, 250)}.{random.randint(0, 255)}"
            pool = docker.types.IPAMPool(subnet=f"{base}.0/24")
            try:
                self.api.create_network(full_name, ipam=docker.types.IPAMConfig(pool_configs=[pool]))
            except docker.errors.APIError as error:
                if "overlap" in str(error):
                    continue
                raise
            return base
        raise AssertionError(f"no free /24 subnet found for network {full_name} in 20 tries")

    def exec_output(self, container_id: str, command: list[str]) -> str:
        exec_id = self.api.exec_create(container_id, command)["Id"]
        return self.api.exec_start(exec_id).decode()

    def remove_all(self) -> None:
        """Remove the containers, then the anonymous volumes the replacements bound by name."""
        for container_id in reversed(self.containers):
            try:
                self.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
        for volume in self.anonymous_volumes:
            try:
                self.api.remove_volume(volume, force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def apps(docker_client: docker.DockerClient, registry: Any, unique_prefix: str) -> Iterator[Apps]:
    test_apps = Apps(docker_client, unique_prefix)
    try:
        yield test_apps
    finally:
        test_apps.remove_all()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rich_container_carried_over(apps: Apps):
    """Static IP and MAC, aliases, port without EXPOSE, volumes, stop settings."""
    base = apps.create_network("front", subnet=True)
    apps.create_network("back")
    named_volume = apps.api.create_volume(f"{apps.prefix}-named")["Name"]
    port = free_port()
    front, back = f"{apps.prefix}-front", f"{apps.prefix}-back"
    mac = "02:42:0a:de:ad:0a"
    old_id = apps.run(
        "rich",
        {
            "MacAddress": mac,
            "StopSignal": "SIGINT",
            "StopTimeout": 30,
            "HostConfig": {
                "NetworkMode": front,
                "PortBindings": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
                "Binds": [f"{named_volume}:/named"],
            },
            "NetworkingConfig": {
                "EndpointsConfig": {front: {"Aliases": ["backend"], "IPAMConfig": {"IPv4Address": f"{base}.10"}}}
            },
        },
        start=False,
    )
    apps.api.connect_container_to_network(old_id, back, aliases=["api"])
    apps.api.start(old_id)
    apps.exec_output(old_id, ["sh", "-c", "echo kept > /data/file && echo kept > /named/file"])

    plan = apps.plan(old_id)
    apps.api.stop(old_id)
    new = apps.create(plan)
    new_short_id = new["Id"][:12]
    networks = new["NetworkSettings"]["Networks"]

    assert networks[front]["IPAddress"] == f"{base}.10"
    assert networks[front]["MacAddress"] == mac
    assert sorted(networks[front]["Aliases"]) == sorted(["backend", new_short_id])
    assert old_id[:12] not in networks[front]["Aliases"]
    assert sorted(networks[back]["Aliases"]) == sorted(["api", new_short_id])
    assert new["NetworkSettings"]["Ports"]["5000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert new["Config"]["StopSignal"] == "SIGINT"
    assert new["Config"]["StopTimeout"] == 30
    assert apps.exec_output(new["Id"], ["cat", "/data/file"]) == "kept\n"
    assert apps.exec_output(new["Id"], ["cat", "/named/file"]) == "kept\n"


def test_generated_mac_not_copied(apps: Apps):
    """A MAC the engine generated is left to the engine, so two containers never share one."""
    apps.create_network("net")
    network = f"{apps.prefix}-net"
    old_id = apps.run("plain", {"HostConfig": {"NetworkMode": network}})
    old_mac = apps.api.inspect_container(old_id)["NetworkSettings"]["Networks"][network]["MacAddress"]

    new = apps.create(apps.plan(old_id))

    assert "MacAddress" not in new["Config"]
    assert new["NetworkSettings"]["Networks"][network]["MacAddress"] != old_mac


def test_image_defaults_follow_new_image(apps: Apps):
    """Image env, labels, entrypoint and healthcheck follow app:2, and user values stay."""
    old_id = apps.run("plain", {"Env": ["USER_VAR=x"], "Labels": {"user": "yes"}})

    new = apps.create(apps.plan(old_id))
    config = new["Config"]

    assert "APP_MODE=two" in config["Env"]
    assert "USER_VAR=x" in config["Env"]
    assert "APP_MODE=one" not in config["Env"]
    assert config["Labels"] == {"tier": "two", "user": "yes"}
    assert config["Entrypoint"] == ["/entrypoint.sh"]
    assert config["Healthcheck"]["Timeout"] == 15 * SECOND
    assert config["Healthcheck"]["Retries"] == 4
    assert "StopSignal" not in config
    assert new["State"]["Running"] is True


def test_user_values_kept(apps: Apps):
    """A user APP_MODE and a user healthcheck survive the new image's defaults."""
    healthcheck = {"Test": ["CMD-SHELL", "true"], "Interval": 7 * SECOND, "Timeout": 3 * SECOND, "Retries": 5}
    old_id = apps.run(
        "custom",
        {"Env": ["APP_MODE=custom"], "Labels": {"tier": "custom"}, "Healthcheck": healthcheck, "Hostname": "myhost"},
    )

    config = apps.create(apps.plan(old_id))["Config"]

    assert "APP_MODE=custom" in config["Env"]
    assert config["Labels"]["tier"] == "custom"
    assert config["Healthcheck"] == healthcheck
    assert config["Hostname"] == "myhost"
    assert config["Entrypoint"] == ["/entrypoint.sh"]


def test_disabled_healthcheck_stays_disabled(apps: Apps):
    old_id = apps.run("nohealth", {"Healthcheck": {"Test": ["NONE"]}})

    new = apps.create(apps.plan(old_id))

    assert new["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in new["State"]


def test_default_bridge_and_user_network(apps: Apps):
    """Created on the default bridge, then connected to the user network with its alias."""
    apps.create_network("back")
    network = f"{apps.prefix}-back"
    old_id = apps.run("bridged", {}, start=False)
    apps.api.connect_container_to_network(old_id, network, aliases=["cache"])
    apps.api.start(old_id)

    new = apps.create(apps.plan(old_id))
    networks = new["NetworkSettings"]["Networks"]

    assert sorted(networks) == sorted(["bridge", network])
    assert "cache" in networks[network]["Aliases"]
    assert new["HostConfig"]["NetworkMode"] == "default"


def test_namespace_follows_new_container(apps: Apps):
    """A `container:` dependent is created in the namespace of the given container."""
    apps.create_network("net")
    vpn_id = apps.run("vpn", {"HostConfig": {"NetworkMode": f"{apps.prefix}-net"}})
    app_id = apps.run("app", {"HostConfig": {"NetworkMode": f"container:{vpn_id}"}})
    new_vpn = apps.create(apps.plan(vpn_id))

    new_app = apps.create(apps.plan(app_id, network_container=new_vpn["Id"]))

    assert new_app["HostConfig"]["NetworkMode"] == f"container:{new_vpn['Id']}"
    assert new_app["State"]["Running"] is True
    assert new_app["Config"]["Hostname"] == new_vpn["Config"]["Hostname"]


def test_default_bridge_user_mac_kept(apps: Apps):
    """A user MAC on the default bridge is sent in Config.MacAddress and the bridge endpoint."""
    mac = "02:42:ac:11:de:ad"
    old_id = apps.run("bridged", {"MacAddress": mac})
    plan = apps.plan(old_id)
    apps.api.stop(old_id)

    new = apps.create(plan)

    assert new["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == mac
    assert new["Config"]["MacAddress"] == mac


def test_auto_remove_anonymous_volume_survives(apps: Apps):
    """Stopping an AutoRemove original removes it, but not the volume the replacement already binds."""
    old_id = apps.run("oneshot", {"HostConfig": {"AutoRemove": True}})
    apps.exec_output(old_id, ["sh", "-c", "echo kept > /data/file"])
    plan = apps.plan(old_id)
    new_id = apps.create(plan, start=False)["Id"]

    apps.api.stop(old_id)
    try:
        apps.api.wait(old_id)
    except docker.errors.NotFound:
        pass  # The engine had already removed it.
    apps.api.start(new_id)

    assert apps.api.inspect_container(new_id)["HostConfig"]["AutoRemove"] is True
    assert apps.exec_output(new_id, ["cat", "/data/file"]) == "kept\n"
