"""Recreate carry-over rules for HostConfig, volumes and published ports.

Fixtures as in test_carryover.py: `custom` has a rich HostConfig; `rich` was created through
the API with the port binding 127.0.0.1:38517->5000/tcp and no ExposedPorts, the named volume
`dwfix-named` at /named and the image's anonymous volume at /data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.specs.carryover import describe_changes, plan_recreate

FIXTURES = Path(__file__).parent / "fixtures" / "inspect"
NEW_REF = "localhost:5001/dwfix/app:2"
RICH_ANONYMOUS_VOLUME = "169f108a4b683158b4921b8d053560a6541c63149733b11c6b58032b9d3801c2"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def host_config(container: dict[str, Any], *, network_container: str | None = None) -> dict[str, Any]:
    plan = plan_recreate(
        container,
        load("image_app1"),
        load("image_app2"),
        name="dwfix-tmp",
        image_ref=NEW_REF,
        network_container=network_container,
    )
    return plan.body["HostConfig"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("RestartPolicy", {"Name": "on-failure", "MaximumRetryCount": 3}),
        ("Memory", 67108864),
        ("MemorySwap", 134217728),
        ("CapAdd", ["NET_ADMIN"]),
        ("CapDrop", ["MKNOD"]),
        ("LogConfig", {"Type": "json-file", "Config": {"max-size": "1m"}}),
        ("ExtraHosts", ["db.local:127.0.0.2"]),
        ("Dns", ["127.0.0.53"]),
        ("Init", True),
        ("Tmpfs", {"/run": "size=1m"}),
        ("Sysctls", {"net.ipv4.ip_forward": "1"}),
        ("Ulimits", [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]),
        ("ShmSize", 67108864),
        ("NetworkMode", "default"),
    ],
)
def test_host_config_field_kept(field, expected):
    assert host_config(load("container_custom"))[field] == expected


@pytest.mark.parametrize("field", ["ContainerIDFile", "ConsoleSize"])
def test_host_config_runtime_field_dropped(field):
    assert field not in host_config(load("container_custom"))


def test_host_config_auto_remove_kept():
    container = load("container_plain")
    container["HostConfig"]["AutoRemove"] = True

    assert host_config(container)["AutoRemove"] is True


def test_port_binding_kept_with_host_ip():
    """The binding is kept as it is, host IP included, although the image exposes nothing on 5000."""
    bindings = host_config(load("container_rich"))["PortBindings"]

    assert bindings == {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "38517"}]}


def test_describe_port_binding():
    lines = describe_changes(load("container_rich"), load("image_app1"), load("image_app2"))

    assert "ports: keeps published ports 127.0.0.1:38517->5000/tcp" in lines


def test_named_volume_bind_kept():
    binds = host_config(load("container_rich"))["Binds"]

    assert "dwfix-named:/named" in binds


def test_anonymous_volume_reattached_by_name():
    """The image's /data volume is bound by its generated name, so its data survives."""
    binds = host_config(load("container_rich"))["Binds"]

    assert f"{RICH_ANONYMOUS_VOLUME}:/data" in binds
    assert len(binds) == 2


def test_anonymous_volume_without_binds():
    """A container with no Binds at all still gets its anonymous volume bound by name."""
    container = load("container_plain")
    name = container["Mounts"][0]["Name"]

    assert host_config(container)["Binds"] == [f"{name}:/data"]


def test_anonymous_volume_read_only_kept_read_only():
    container = load("container_plain")
    container["Mounts"][0]["RW"] = False
    name = container["Mounts"][0]["Name"]

    assert host_config(container)["Binds"] == [f"{name}:/data:ro"]


def test_anonymous_bind_entry_gets_name():
    """A Binds entry with only a container path is an anonymous volume; it gets the volume's name."""
    container = load("container_plain")
    container["HostConfig"]["Binds"] = ["/data"]
    name = container["Mounts"][0]["Name"]

    assert host_config(container)["Binds"] == [f"{name}:/data"]


def test_anonymous_mount_gets_source():
    """A volume in HostConfig.Mounts without a Source gets the generated name, and no extra bind."""
    container = load("container_plain")
    container["HostConfig"]["Mounts"] = [{"Type": "volume", "Target": "/data"}]
    name = container["Mounts"][0]["Name"]

    result = host_config(container)

    assert result["Mounts"] == [{"Type": "volume", "Target": "/data", "Source": name}]
    assert result["Binds"] is None


def test_bind_mounts_not_turned_into_volumes():
    container = load("container_plain")
    container["HostConfig"]["Binds"] = ["/srv/site:/www:ro"]
    container["Mounts"].append(
        {
            "Type": "bind",
            "Source": "/srv/site",
            "Destination": "/www",
            "Mode": "ro",
            "RW": False,
            "Propagation": "rprivate",
        }
    )
    name = container["Mounts"][0]["Name"]

    assert host_config(container)["Binds"] == ["/srv/site:/www:ro", f"{name}:/data"]


def test_links_in_create_form():
    """Inspect shows links as `/db:/NAME/alias`; create takes `db:alias`."""
    container = load("container_plain")
    container["HostConfig"]["Links"] = ["/dwfix-db:/dwfix-plain/database"]

    assert host_config(container)["Links"] == ["dwfix-db:database"]


def test_namespace_mode_drops_conflicting_fields():
    """The engine rejects DNS, extra hosts, links and ports with a `container:` network mode."""
    container = load("container_sidecar")
    container["HostConfig"]["PortBindings"] = {}
    container["HostConfig"]["Dns"] = []

    result = host_config(container, network_container="dwfix-rich-new")

    for field in ("Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "PortBindings", "PublishAllPorts", "Links"):
        assert field not in result, field
