"""Compose `networks` and `network_mode`: endpoints, later connects and create requests."""

from __future__ import annotations

import pytest

from controller.errors import SpecError
from controller.specs.compose import plan_service
from controller.specs.plan import NetworkAttachment


def plan_with(spec, **kwargs):
    return plan_service({"image": "x", **spec}, name="app", image=None, **kwargs)


def test_list_form_sorted_by_name():
    plan = plan_with({"networks": ["zeta", "alpha", "mid"]})
    assert plan.body["HostConfig"]["NetworkMode"] == "alpha"
    assert plan.body["NetworkingConfig"] == {"EndpointsConfig": {"alpha": {}}}
    assert [attachment.name for attachment in plan.connect] == ["mid", "zeta"]
    assert [request.name for request in plan.networks] == ["alpha", "mid", "zeta"]
    assert plan.networks[0].labels == {"dockwright.created-by": "dockwright"}


def test_map_form_with_settings_and_priority():
    plan = plan_with(
        {
            "networks": {
                "back": {"aliases": ["api"], "ipv4_address": "172.30.0.5", "ipv6_address": "fd00::5", "priority": 10},
                "front": None,
                "mgmt": {"priority": 10, "mac_address": "02:42:ac:11:00:02", "driver_opts": {"com.example.opt": 1}},
            }
        }
    )
    assert plan.body["HostConfig"]["NetworkMode"] == "back"
    assert plan.body["NetworkingConfig"]["EndpointsConfig"] == {
        "back": {"Aliases": ["api"], "IPAMConfig": {"IPv4Address": "172.30.0.5", "IPv6Address": "fd00::5"}}
    }
    assert plan.connect == (
        NetworkAttachment(name="mgmt", mac_address="02:42:ac:11:00:02", extra={"DriverOpts": {"com.example.opt": "1"}}),
        NetworkAttachment(name="front"),
    )


def test_first_network_mac_goes_into_config():
    body = plan_with({"networks": {"net": {"mac_address": "02:42:ac:11:00:09"}}}).body
    assert body["MacAddress"] == "02:42:ac:11:00:09"
    assert body["NetworkingConfig"]["EndpointsConfig"]["net"]["MacAddress"] == "02:42:ac:11:00:09"


def test_conflicting_mac_addresses():
    with pytest.raises(SpecError) as caught:
        plan_with({"mac_address": "02:42:ac:11:00:01", "networks": {"net": {"mac_address": "02:42:ac:11:00:09"}}})
    assert caught.value.field == "spec.mac_address"


def test_predefined_network_is_external():
    plan = plan_with({"networks": ["bridge"]})
    assert plan.body["HostConfig"]["NetworkMode"] == "bridge"
    assert plan.networks[0].external
    assert plan.networks[0].labels == {}


def test_predefined_network_rejects_aliases():
    with pytest.raises(SpecError) as caught:
        plan_with({"networks": {"bridge": {"aliases": ["a"]}}})
    assert caught.value.field == "spec.networks.bridge.aliases"


def test_no_networks_inline():
    body = plan_with({}).body
    assert "NetworkingConfig" not in body
    assert "NetworkMode" not in body["HostConfig"]


@pytest.mark.parametrize("mode", ["host", "none", "bridge", "default", "container:db-1"])
def test_network_modes(mode):
    plan = plan_with({"network_mode": mode})
    assert plan.body["HostConfig"]["NetworkMode"] == mode
    assert "NetworkingConfig" not in plan.body
    assert plan.networks == ()


def test_network_mode_service_rejected_inline():
    with pytest.raises(SpecError) as caught:
        plan_with({"network_mode": "service:db"})
    assert caught.value.field == "spec.network_mode"
    assert "container:NAME" in str(caught.value)


@pytest.mark.parametrize("mode", ["mynet", "container:", "container:bad name", ""])
def test_invalid_network_mode(mode):
    with pytest.raises(SpecError) as caught:
        plan_with({"network_mode": mode})
    assert caught.value.field == "spec.network_mode"


def test_network_mode_and_networks_exclude():
    with pytest.raises(SpecError) as caught:
        plan_with({"network_mode": "host", "networks": ["a"]})
    assert "exclude each other" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("hostname", "h"), ("domainname", "d"), ("mac_address", "02:42:ac:11:00:02"), ("dns", "1.1.1.1"), ("dns_search", "x"), ("dns_opt", ["ndots:1"]), ("extra_hosts", ["a:1.2.3.4"]), ("ports", ["80"]), ("expose", ["80"])],
)
def test_container_mode_conflicts(key, value):
    with pytest.raises(SpecError) as caught:
        plan_with({"network_mode": "container:db-1", key: value})
    assert caught.value.field == f"spec.{key}"
    assert "network namespace" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ("front", "spec.networks", "expected a list"),
        ([1], "spec.networks[0]", "expected a string"),
        (["a", "a"], "spec.networks", "listed twice"),
        ({"a": ["x"]}, "spec.networks.a", "expected a mapping"),
        ({"a": {"alias": ["x"]}}, "spec.networks.a.alias", "unsupported key"),
        ({"a": {"aliases": "x"}}, "spec.networks.a.aliases", "expected a list"),
        ({"a": {"priority": "high"}}, "spec.networks.a.priority", "expected an integer"),
        ({"a": {"ipv4_address": 5}}, "spec.networks.a.ipv4_address", "expected a string"),
    ],
)
def test_invalid_networks(value, field, message):
    with pytest.raises(SpecError) as caught:
        plan_with({"networks": value})
    assert caught.value.field == field
    assert message in str(caught.value)


def compose_plan(spec, networks=None, volumes=None, **kwargs):
    return plan_service(
        {"image": "x", **spec},
        name=None,
        image=None,
        project="shop",
        service_name="web",
        top_level_networks=networks or {},
        top_level_volumes=volumes or {},
        **kwargs,
    )


def test_compose_default_network():
    plan = compose_plan({})
    assert plan.body["HostConfig"]["NetworkMode"] == "shop_default"
    assert plan.body["NetworkingConfig"]["EndpointsConfig"] == {"shop_default": {"Aliases": ["web"]}}
    assert plan.networks[0].labels["com.docker.compose.network"] == "default"


def test_compose_default_network_override():
    plan = compose_plan({}, networks={"default": {"name": "shared-net", "external": True}})
    assert plan.body["HostConfig"]["NetworkMode"] == "shared-net"
    assert plan.networks[0].external


def test_compose_network_definitions():
    plan = compose_plan(
        {"networks": {"front": {"aliases": ["site"]}, "back": None, "legacy": None}},
        networks={
            "front": {"driver": "bridge", "driver_opts": {"com.docker.network.bridge.name": "br-shop"}, "internal": True, "attachable": True, "enable_ipv6": True, "labels": ["team=web"]},
            "back": {"name": "custom-back", "ipam": {"driver": "default", "config": [{"subnet": "172.29.0.0/16", "ip_range": "172.29.5.0/24", "gateway": "172.29.0.1", "aux_addresses": {"router": "172.29.0.2"}}], "options": {"o": "v"}}},
            "legacy": {"external": {"name": "old-net"}},
        },
    )
    assert plan.body["HostConfig"]["NetworkMode"] == "custom-back"
    assert plan.body["NetworkingConfig"]["EndpointsConfig"] == {"custom-back": {"Aliases": ["web"]}}
    assert [(attachment.name, attachment.aliases) for attachment in plan.connect] == [("shop_front", ("web", "site")), ("old-net", ("web",))]
    requests = {request.name: request for request in plan.networks}
    front = requests["shop_front"]
    assert front.driver == "bridge"
    assert front.driver_opts == {"com.docker.network.bridge.name": "br-shop"}
    assert front.internal
    assert front.attachable
    assert front.enable_ipv6
    assert front.labels == {"dockwright.created-by": "dockwright", "com.docker.compose.project": "shop", "com.docker.compose.network": "front", "team": "web"}
    assert requests["custom-back"].ipam == {
        "Driver": "default",
        "Config": [{"Subnet": "172.29.0.0/16", "IPRange": "172.29.5.0/24", "Gateway": "172.29.0.1", "AuxiliaryAddresses": {"router": "172.29.0.2"}}],
        "Options": {"o": "v"},
    }
    assert requests["old-net"].external


def test_compose_network_mode_host_skips_default():
    plan = compose_plan({"network_mode": "host"})
    assert plan.body["HostConfig"]["NetworkMode"] == "host"
    assert plan.networks == ()


@pytest.mark.parametrize(
    ("spec", "networks", "field", "message"),
    [
        ({"networks": ["ghost"]}, {}, "spec.networks[0]", "undefined network 'ghost'"),
        ({"networks": ["a"]}, {"a": {"drivr": "x"}}, "networks.a.drivr", "unsupported key"),
        ({"networks": ["a"]}, {"a": {"ipam": {"config": [{"cidr": "x"}]}}}, "networks.a.ipam.config[0].cidr", "unsupported key"),
        ({"networks": ["a"]}, {"a": {"external": "perhaps"}}, "networks.a.external", "expected true or false"),
        ({"networks": ["a"]}, {"a": ["x"]}, "networks.a", "expected a mapping"),
    ],
)
def test_compose_network_errors(spec, networks, field, message):
    with pytest.raises(SpecError) as caught:
        compose_plan(spec, networks=networks)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_compose_volume_definitions():
    plan = compose_plan(
        {"volumes": ["data:/data", {"type": "volume", "source": "cache", "target": "/cache"}, "ext:/ext"]},
        volumes={"data": None, "cache": {"name": "shared-cache", "driver": "local", "driver_opts": {"type": "tmpfs"}, "labels": {"k": "v"}}, "ext": {"external": True}},
    )
    assert plan.body["HostConfig"]["Binds"] == ["shop_data:/data", "ext:/ext"]
    assert plan.body["HostConfig"]["Mounts"][0]["Source"] == "shared-cache"
    requests = {request.name: request for request in plan.volumes}
    assert requests["shop_data"].labels == {"dockwright.created-by": "dockwright", "com.docker.compose.project": "shop", "com.docker.compose.volume": "data"}
    assert requests["shared-cache"].driver == "local"
    assert requests["shared-cache"].driver_opts == {"type": "tmpfs"}
    assert requests["shared-cache"].labels["k"] == "v"
    assert requests["ext"].external
    assert requests["ext"].labels == {}


def test_compose_undefined_volume():
    with pytest.raises(SpecError) as caught:
        compose_plan({"volumes": ["ghost:/g"]})
    assert caught.value.field == "spec.volumes[0]"
    assert "undefined volume 'ghost'" in str(caught.value)
