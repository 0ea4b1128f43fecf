"""Recreate carry-over rules for networks: mode, aliases, static addresses and MAC.

Fixtures (real engine 20.10 inspect output):

- `rich`: created on `dwfix-front` (subnet 172.29.213.0/24) with IPv4 172.29.213.10, MAC
  02:42:ac:1d:d5:0a and alias `backend`, then connected to `dwfix-back` with alias `api`.
- `bridged`: on the default bridge, then connected to `dwfix-back` with alias `cache`; its MAC
  addresses are generated.
- `sidecar`: network mode `container:` the `rich` container.
- `hostnet`: host network mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.specs.carryover import describe_changes, plan_recreate
from controller.specs.plan import ContainerPlan, NetworkAttachment

FIXTURES = Path(__file__).parent / "fixtures" / "inspect"
NEW_REF = "localhost:5001/dwfix/app:2"
RICH_MAC = "02:42:ac:1d:d5:0a"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def plan(container: dict[str, Any], *, network_container: str | None = None) -> ContainerPlan:
    return plan_recreate(
        container,
        load("image_app1"),
        load("image_app2"),
        name="dwfix-tmp",
        image_ref=NEW_REF,
        network_container=network_container,
    )


def endpoints(result: ContainerPlan) -> dict[str, Any]:
    return result.body["NetworkingConfig"]["EndpointsConfig"]


# User networks, static address and MAC


def test_created_on_network_mode_network():
    result = plan(load("container_rich"))

    assert result.body["HostConfig"]["NetworkMode"] == "dwfix-front"
    assert list(endpoints(result)) == ["dwfix-front"]


def test_static_ipv4_kept():
    endpoint = endpoints(plan(load("container_rich")))["dwfix-front"]

    assert endpoint["IPAMConfig"] == {"IPv4Address": "172.29.213.10"}


def test_user_mac_kept():
    """Config.MacAddress is set, so the MAC is the user's and is sent the API 1.41 way."""
    result = plan(load("container_rich"))

    assert result.body["MacAddress"] == RICH_MAC
    assert endpoints(result)["dwfix-front"]["MacAddress"] == RICH_MAC


def test_user_aliases_kept_engine_alias_dropped():
    """The user alias `backend` stays, and the old short id that the engine added does not."""
    endpoint = endpoints(plan(load("container_rich")))["dwfix-front"]

    assert endpoint["Aliases"] == ["backend"]


def test_second_network_connected_after_create():
    """API 1.41 creates on one network; the other is connected with its alias, without a MAC."""
    result = plan(load("container_rich"))

    assert result.connect == (NetworkAttachment(name="dwfix-back", aliases=("api",)),)


def test_repeated_recreate_keeps_only_user_alias():
    """A container already recreated has its own short id as alias; only `backend` carries over."""
    container = load("container_rich")
    container["Id"] = "0123456789ab" + container["Id"][12:]
    container["NetworkSettings"]["Networks"]["dwfix-front"]["Aliases"] = ["backend", "0123456789ab"]

    endpoint = endpoints(plan(container))["dwfix-front"]

    assert endpoint["Aliases"] == ["backend"]


def test_static_ipv6_kept():
    container = load("container_rich")
    container["NetworkSettings"]["Networks"]["dwfix-back"]["IPAMConfig"] = {"IPv6Address": "fd00:dead::7"}

    (attachment,) = plan(container).connect

    assert attachment.ipv6_address == "fd00:dead::7"
    assert attachment.endpoint_config()["IPAMConfig"] == {"IPv6Address": "fd00:dead::7"}


def test_endpoint_links_and_driver_opts_kept():
    container = load("container_rich")
    endpoint = container["NetworkSettings"]["Networks"]["dwfix-back"]
    endpoint["Links"] = ["dwfix-db:db"]
    endpoint["DriverOpts"] = {"com.example.opt": "1"}

    (attachment,) = plan(container).connect

    assert attachment.extra == {"Links": ["dwfix-db:db"], "DriverOpts": {"com.example.opt": "1"}}


def test_link_local_address_kept_alone():
    container = load("container_rich")
    container["NetworkSettings"]["Networks"]["dwfix-back"]["IPAMConfig"] = {"LinkLocalIPs": ["169.254.7.7"]}

    (attachment,) = plan(container).connect

    assert attachment.endpoint_config()["IPAMConfig"] == {"LinkLocalIPs": ["169.254.7.7"]}


def test_network_mode_by_id_resolved_to_name():
    container = load("container_rich")
    front_id = container["NetworkSettings"]["Networks"]["dwfix-front"]["NetworkID"]
    container["HostConfig"]["NetworkMode"] = front_id[:12]

    result = plan(container)

    assert result.body["HostConfig"]["NetworkMode"] == "dwfix-front"
    assert list(endpoints(result)) == ["dwfix-front"]


def test_network_mode_not_attached_uses_first_network():
    """A container disconnected from its NetworkMode network is created on one it is on."""
    container = load("container_rich")
    del container["NetworkSettings"]["Networks"]["dwfix-front"]
    container["Config"].pop("MacAddress")

    result = plan(container)

    assert result.body["HostConfig"]["NetworkMode"] == "dwfix-back"
    assert list(endpoints(result)) == ["dwfix-back"]
    assert result.connect == ()


def test_describe_networks():
    lines = describe_changes(load("container_rich"), load("image_app1"), load("image_app2"))

    assert "network: keeps network dwfix-front with aliases backend, IPv4 address 172.29.213.10" in lines
    assert "network: keeps network dwfix-back with aliases api" in lines
    assert f"network: keeps the MAC address {RICH_MAC} set by the user" in lines


# Default bridge plus a user network


def test_default_bridge_created_without_endpoint_config():
    result = plan(load("container_bridged"))

    assert result.body["HostConfig"]["NetworkMode"] == "default"
    assert "NetworkingConfig" not in result.body


def test_default_bridge_user_network_connected_with_alias():
    result = plan(load("container_bridged"))

    assert result.connect == (NetworkAttachment(name="dwfix-back", aliases=("cache",)),)


def test_generated_mac_not_copied():
    """Without Config.MacAddress the MACs were generated and must not be copied."""
    result = plan(load("container_bridged"))

    assert "MacAddress" not in result.body
    assert all(attachment.mac_address is None for attachment in result.connect)


def test_default_bridge_gets_no_aliases_or_address():
    """The engine rejects aliases and static addresses on the default bridge."""
    container = load("container_bridged")
    bridge = container["NetworkSettings"]["Networks"]["bridge"]
    bridge["Aliases"] = ["web"]
    bridge["IPAMConfig"] = {"IPv4Address": "172.17.0.9"}
    container["HostConfig"]["NetworkMode"] = "bridge"

    result = plan(container)

    assert result.body["HostConfig"]["NetworkMode"] == "bridge"
    assert "NetworkingConfig" not in result.body


def test_default_bridge_user_mac_kept():
    container = load("container_bridged")
    container["Config"]["MacAddress"] = "02:42:ac:11:00:99"

    result = plan(container)

    assert result.body["MacAddress"] == "02:42:ac:11:00:99"


# Shared network namespace and host mode


def test_namespace_mode_points_at_new_container():
    result = plan(load("container_sidecar"), network_container="dwfix-rich-new")

    assert result.body["HostConfig"]["NetworkMode"] == "container:dwfix-rich-new"


def test_namespace_mode_keeps_target_when_none_given():
    container = load("container_sidecar")

    result = plan(container)

    assert result.body["HostConfig"]["NetworkMode"] == container["HostConfig"]["NetworkMode"]


def test_namespace_mode_sends_no_network_fields():
    """The hostname in inspect is the other container's; the engine rejects it and these fields."""
    container = load("container_sidecar")
    container["Config"]["Domainname"] = "example.test"

    result = plan(container, network_container="dwfix-rich-new")

    for field in ("Hostname", "Domainname", "MacAddress", "ExposedPorts", "NetworkingConfig"):
        assert field not in result.body, field
    assert result.connect == ()


def test_host_mode_has_no_endpoints():
    result = plan(load("container_hostnet"))

    assert result.body["HostConfig"]["NetworkMode"] == "host"
    assert "NetworkingConfig" not in result.body
    assert "MacAddress" not in result.body
    assert result.connect == ()
