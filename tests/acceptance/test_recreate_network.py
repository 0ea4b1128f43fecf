"""Recreate and networks end to end: static addresses and MACs, aliases, several networks on
API 1.41, and containers that share the target's network namespace."""

from __future__ import annotations

import json
import random

import docker
import docker.errors
import docker.types

from tests.acceptance.test_recreate import (
    APP2,
    SERVE,
    WEB_IMAGE,
    build_apps,
    exec_output,
    leftover_names,
    recreate,
    run_container,
)
from tests.support.daemon import Daemon
from tests.support.images import build_image


def create_subnet_network(api: docker.APIClient, name: str) -> str:
    """Create a user network with a fixed /24 subnet that no other network uses; return the subnet."""
    for _ in range(20):
        subnet = f"172.{random.randint(20, 31)}.{random.randint(0, 255)}.0/24"
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            api.create_network(name, ipam=ipam)
            return subnet
        except docker.errors.APIError as error:
            if "overlap" not in str(error):
                raise
    raise AssertionError("no free 172.20-31.x.0/24 subnet found for the test network")


def test_static_address_and_mac_kept(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """R1: a fixed IPv4 address and MAC stay the same; a MAC the engine generated is not copied."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    network = f"{unique_prefix}-net"
    subnet = create_subnet_network(api, network)
    address = subnet.replace(".0/24", ".10")
    mac = "02:42:0a:0b:0c:0d"
    fixed = f"{unique_prefix}-fixed"
    generated = f"{unique_prefix}-generated"
    run_container(api, fixed, {
        "Image": apps.old,
        "MacAddress": mac,
        "HostConfig": {"NetworkMode": network},
        "NetworkingConfig": {"EndpointsConfig": {network: {"IPAMConfig": {"IPv4Address": address}}}},
    })
    run_container(api, generated, {"Image": apps.old, "HostConfig": {"NetworkMode": network}})

    assert recreate(daemon, fixed, image=apps.new)["status"] == "completed"
    assert recreate(daemon, generated, image=apps.new)["status"] == "completed"

    endpoint = api.inspect_container(fixed)["NetworkSettings"]["Networks"][network]
    assert endpoint["IPAddress"] == address
    assert endpoint["MacAddress"] == mac
    assert endpoint["IPAMConfig"]["IPv4Address"] == address
    assert api.inspect_container(fixed)["Config"]["MacAddress"] == mac
    assert not api.inspect_container(generated)["Config"].get("MacAddress")


def test_aliases_after_three_recreates(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """R2: after three recreates the aliases are `backend` and the new short id, and `backend` resolves to it."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    network = f"{unique_prefix}-net"
    api.create_network(network)
    name = f"{unique_prefix}-backend"
    client = f"{unique_prefix}-client"
    run_container(api, name, {
        "Image": apps.old,
        "HostConfig": {"NetworkMode": network},
        "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["backend"]}}},
    })
    run_container(api, client, {"Image": WEB_IMAGE, "HostConfig": {"NetworkMode": network}})

    for image in (apps.new, apps.old, apps.new):
        assert recreate(daemon, name, image=image)["status"] == "completed"

    inspect = api.inspect_container(name)
    endpoint = inspect["NetworkSettings"]["Networks"][network]
    assert sorted(endpoint["Aliases"]) == sorted(["backend", inspect["Id"][:12]])
    lookup = exec_output(api, client, "nslookup", "backend")
    assert endpoint["IPAddress"] in lookup


def test_bridge_and_user_network(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """R7: a container on the default bridge and a user network keeps both, also after a rollback."""
    api = docker_client.api
    crashing = APP2.replace('ENTRYPOINT ["/entrypoint.sh"]', 'ENTRYPOINT ["sh", "-c", "exit 5"]')
    apps = build_apps(docker_client, unique_prefix)
    broken = f"localhost:5001/{unique_prefix}/broken:1"
    build_image(docker_client, broken, crashing.format(web=WEB_IMAGE, prefix=unique_prefix), {"entrypoint.sh": SERVE, "index.html": "x\n"}, push=True)
    network = f"{unique_prefix}-net"
    api.create_network(network)
    name = f"{unique_prefix}-multi"
    old_id = run_container(api, name, {"Image": apps.old})
    api.connect_container_to_network(old_id, network, aliases=["api"])

    assert recreate(daemon, name, image=apps.new)["status"] == "completed"
    networks = api.inspect_container(name)["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge", network}
    assert "api" in networks[network]["Aliases"]

    recreated_id = api.inspect_container(name)["Id"]
    row = recreate(daemon, name, image=broken)
    assert row["status"] == "failed"
    assert row["error"].startswith("rolled back: ")
    inspect = api.inspect_container(name)
    assert inspect["Id"] == recreated_id
    assert inspect["State"]["Running"] is True
    assert set(inspect["NetworkSettings"]["Networks"]) == {"bridge", network}
    assert "api" in inspect["NetworkSettings"]["Networks"][network]["Aliases"]
    assert leftover_names(api, name) == []


def test_namespace_dependent_recreated(daemon: Daemon, docker_client: docker.DockerClient, unique_prefix: str) -> None:
    """R8: after `vpn` is recreated, `app` (network_mode container:vpn) is recreated into the new namespace."""
    api = docker_client.api
    apps = build_apps(docker_client, unique_prefix)
    vpn = f"{unique_prefix}-vpn"
    app = f"{unique_prefix}-app"
    vpn_id = run_container(api, vpn, {"Image": apps.old})
    old_app_id = run_container(api, app, {
        "Image": WEB_IMAGE, "Cmd": ["-p", "8081", "-h", "/www"], "HostConfig": {"NetworkMode": f"container:{vpn}"},
    })
    assert api.inspect_container(app)["HostConfig"]["NetworkMode"] == f"container:{vpn_id}"

    row = recreate(daemon, vpn, image=apps.new)
    assert row["status"] == "completed", row
    children = daemon.table.execute("SELECT id FROM docker_operations WHERE parent_id = ?", row["id"])
    assert len(children) == 1
    child = daemon.table.wait(children[0]["id"], timeout=90)
    assert child["status"] == "completed", child
    assert child["container"] == app
    assert json.loads(row["result"])["dependent_operations"] == [child["id"]]

    new_vpn_id = api.inspect_container(vpn)["Id"]
    inspect = api.inspect_container(app)
    assert inspect["Id"] != old_app_id
    assert inspect["State"]["Running"] is True
    assert inspect["HostConfig"]["NetworkMode"] == f"container:{new_vpn_id}"
    # The app serves on 8081 inside the new vpn's namespace, so the vpn reaches it on localhost.
    assert exec_output(api, vpn, "wget", "-q", "-O", "-", "http://127.0.0.1:8081/") == "web 1\n"
    assert exec_output(api, app, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/") == f"two {unique_prefix}\n"
