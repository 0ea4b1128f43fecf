"""Compose `ports` and `expose`, converted to ExposedPorts and PortBindings."""

from __future__ import annotations

import pytest

from controller.errors import SpecError
from controller.specs.compose import plan_service


def ports_of(*entries, expose=None):
    spec = {"image": "x", "ports": list(entries)}
    if expose is not None:
        spec["expose"] = expose
    body = plan_service(spec, name="app", image=None).body
    return body.get("ExposedPorts"), body["HostConfig"].get("PortBindings")


@pytest.mark.parametrize(
    ("entry", "bindings"),
    [
        ("8080", {"8080/tcp": [{"HostIp": "", "HostPort": ""}]}),
        (8080, {"8080/tcp": [{"HostIp": "", "HostPort": ""}]}),
        ("18080:8080", {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]}),
        ("127.0.0.1:18080:8080", {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}),
        ("127.0.0.1::8080", {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
        ("53:53/udp", {"53/udp": [{"HostIp": "", "HostPort": "53"}]}),
        ("5000/sctp", {"5000/sctp": [{"HostIp": "", "HostPort": ""}]}),
        ("[::1]:8080:80", {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
        ("[::1]::80/udp", {"80/udp": [{"HostIp": "::1", "HostPort": ""}]}),
        (
            "9000-9001:9000-9001",
            {"9000/tcp": [{"HostIp": "", "HostPort": "9000"}], "9001/tcp": [{"HostIp": "", "HostPort": "9001"}]},
        ),
        (
            "127.0.0.1:19000-19001:9000-9001/udp",
            {"9000/udp": [{"HostIp": "127.0.0.1", "HostPort": "19000"}], "9001/udp": [{"HostIp": "127.0.0.1", "HostPort": "19001"}]},
        ),
        ("9000-9010:80", {"80/tcp": [{"HostIp": "", "HostPort": "9000-9010"}]}),
        ("7000-7001", {"7000/tcp": [{"HostIp": "", "HostPort": ""}], "7001/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ],
)
def test_short_form(entry, bindings):
    exposed, port_bindings = ports_of(entry)
    assert port_bindings == bindings
    assert exposed == {port: {} for port in bindings}


@pytest.mark.parametrize(
    ("entry", "bindings"),
    [
        ({"target": 80}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
        ({"target": 80, "published": 8080}, {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
        ({"target": "80", "published": "8080-8081"}, {"80/tcp": [{"HostIp": "", "HostPort": "8080-8081"}]}),
        (
            {"target": 53, "published": 1053, "host_ip": "127.0.0.1", "protocol": "udp", "mode": "host"},
            {"53/udp": [{"HostIp": "127.0.0.1", "HostPort": "1053"}]},
        ),
        ({"target": 80, "host_ip": "::1"}, {"80/tcp": [{"HostIp": "::1", "HostPort": ""}]}),
        ({"target": 80, "mode": "ingress"}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ],
)
def test_long_form(entry, bindings):
    exposed, port_bindings = ports_of(entry)
    assert port_bindings == bindings
    assert exposed == {port: {} for port in bindings}


def test_same_port_published_twice():
    _, bindings = ports_of("127.0.0.1:8080:80", "[::1]:8080:80")
    assert bindings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": "8080"}]}


def test_expose_forms():
    exposed, _ = ports_of(expose=["8080", 9090, "53/udp", "7000-7001"])
    assert exposed == {"8080/tcp": {}, "9090/tcp": {}, "53/udp": {}, "7000/tcp": {}, "7001/tcp": {}}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("http", "invalid port 'http'"),
        ("0", "ports run from 1 to 65535"),
        ("70000", "ports run from 1 to 65535"),
        ("9001-9000", "ports run from 1 to 65535"),
        ("8080/icmp", "invalid protocol 'icmp'"),
        (":80", "empty published port"),
        (":8080:80", "empty host IP"),
        ("::1:8080:80", "write an IPv6 host IP in brackets"),
        ("[::1]8080:80", "expected [IPv6]:PUBLISHED:TARGET"),
        ("[::1]:80", "expected PUBLISHED:TARGET"),
        ("9000-9002:9000-9001", "ranges must have the same length"),
        ("8000:80-81", "ranges must have the same length"),
        (True, "invalid port True"),
        (["80"], "invalid port ['80']"),
        ({"published": 80}, "missing"),
        ({"target": 80, "extra": 1}, "unsupported key"),
        ({"target": 0}, "at least 1"),
        ({"target": 70000}, "expected 1 to 65535"),
        ({"target": "eighty"}, "expected an integer"),
        ({"target": 80, "protocol": "icmp"}, "invalid protocol"),
        ({"target": 80, "mode": "swarm"}, "expected host or ingress"),
        ({"target": 80, "published": "x"}, "invalid port"),
    ],
)
def test_invalid_port(entry, message):
    with pytest.raises(SpecError) as caught:
        ports_of("80", entry)
    assert caught.value.field.startswith("spec.ports[1]")
    assert message in str(caught.value)


def test_ports_must_be_list():
    with pytest.raises(SpecError) as caught:
        plan_service({"image": "x", "ports": "80:80"}, name="app", image=None)
    assert caught.value.field == "spec.ports"
    assert "expected a list" in str(caught.value)


@pytest.mark.parametrize("entry", ["http", "70000", "80/icmp", 1.5])
def test_invalid_expose(entry):
    with pytest.raises(SpecError) as caught:
        ports_of(expose=["80", entry])
    assert caught.value.field == "spec.expose[1]"
