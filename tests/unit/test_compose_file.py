"""Compose files: interpolation, .env syntax, project names, loading a service, the spec hash."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import SpecError
from controller.specs.compose import plan_compose_service, plan_service
from controller.specs.compose_file import (
    interpolate,
    interpolate_string,
    load_compose_service,
    normalize_project_name,
    parse_env_text,
    read_env_file,
    spec_hash,
)
from controller.specs.plan import LABEL_SPEC_HASH

ENVIRON = {"NAME": "web", "EMPTY": "", "PORT": "8080"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("plain", "plain"),
        ("$NAME", "web"),
        ("${NAME}", "web"),
        ("x-${NAME}-y", "x-web-y"),
        ("$NAME.local", "web.local"),
        ("${UNSET}", ""),
        ("$UNSET", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${UNSET-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${NAME:-fallback}", "web"),
        ("${NAME:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${NAME}}", "web"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a b c}", "a b c"),
        ("${UNSET:-}", ""),
        ("$$NAME", "$NAME"),
        ("$${NAME}", "${NAME}"),
        ("cost: $$5", "cost: $5"),
        ("${NAME:?must be set}", "web"),
        ("${EMPTY?must be set}", ""),
        ("${PORT}:${PORT}", "8080:8080"),
        ("$1", "$1"),
        ("price $", "price $"),
        ("$2a$14$hash", "$2a$14"),
        ("$}", "$}"),
    ],
)
def test_interpolate_string(template, expected):
    assert interpolate_string(template, ENVIRON) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?needs a value}", "needs a value"),
        ("${EMPTY:?needs a value}", "needs a value"),
        ("${UNSET?}", "variable UNSET is required"),
        ("${NAME", "expected }"),
        ("${UNSET:-abc", "missing closing }"),
        ("${}", "variable name"),
        ("${1X}", "variable name"),
        ("${NAME:x}", "expected }"),
    ],
)
def test_interpolate_string_errors(template, message):
    with pytest.raises(SpecError) as caught:
        interpolate_string(template, ENVIRON, path="services.web.image")
    assert caught.value.field == "services.web.image"
    assert message in str(caught.value)


def test_interpolate_walks_values_not_keys():
    document = {"services": {"${NAME}": {"image": "${NAME}:1", "ports": ["${PORT}:80", 5], "tty": True}}}
    result = interpolate(document, ENVIRON)
    assert result == {"services": {"${NAME}": {"image": "web:1", "ports": ["8080:80", 5], "tty": True}}}


def test_interpolate_error_names_list_path():
    with pytest.raises(SpecError) as caught:
        interpolate({"services": {"web": {"ports": ["80", "${X:?set X}"]}}}, {})
    assert caught.value.field == "services.web.ports[1]"


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_interpolate_text_without_dollar_is_unchanged(text):
    assert interpolate_string(text, ENVIRON) == text


@given(st.text(max_size=40))
def test_escaped_dollars_round_trip(text):
    """Any text with every $ doubled interpolates back to itself."""
    assert interpolate_string(text.replace("$", "$$"), ENVIRON) == text


def test_parse_env_text_syntax():
    text = textwrap.dedent(
        """\
        # a comment
        PLAIN=value
        export EXPORTED=yes
        SPACED = padded value  
        INLINE=value # a comment
        HASH=a#b
        SINGLE='lit $X # kept'
        DOUBLE="line\\nnext \\"quoted\\""
        MULTI="first
        second"
        EMPTY=
        BARE

        URL=http://x/?a=b
        """
    )
    entries = dict(parse_env_text(text, source=".env", field="spec.env_file"))
    assert entries["PLAIN"] == "value"
    assert entries["EXPORTED"] == "yes"
    assert entries["SPACED"] == "padded value"
    assert entries["INLINE"] == "value"
    assert entries["HASH"] == "a#b"
    assert entries["SINGLE"] == "lit $X # kept"
    assert entries["DOUBLE"] == 'line\nnext "quoted"'
    assert entries["MULTI"] == "first\nsecond"
    assert entries["EMPTY"] == ""
    assert entries["BARE"] is None
    assert entries["URL"] == "http://x/?a=b"


@pytest.mark.parametrize(
    ("text", "message"),
    [("1BAD=x", "invalid variable name"), ("A='open", "missing closing '"), ('A="open', 'missing closing "'), ("=x", "invalid variable name")],
)
def test_parse_env_text_errors(text, message):
    with pytest.raises(SpecError) as caught:
        parse_env_text(text, source="app.env", field="spec.env_file[0]")
    assert caught.value.field == "spec.env_file[0]"
    assert message in str(caught.value)
    assert "app.env line 1" in str(caught.value)


def test_read_env_file_missing(tmp_path):
    with pytest.raises(SpecError) as caught:
        read_env_file(tmp_path / "nope.env", field="spec.env_file")
    assert "file not found" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "normalized"),
    [("MyApp", "myapp"), ("my app.v2", "myappv2"), ("_lead", "lead"), ("a-b_c", "a-b_c"), ("Ünï", "n")],
)
def test_normalize_project_name(name, normalized):
    assert normalize_project_name(name) == normalized


def test_normalize_project_name_empty():
    with pytest.raises(SpecError) as caught:
        normalize_project_name("...")
    assert caught.value.field == "spec.project"


def write_compose(directory: Path, text: str, name: str = "compose.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_load_service_interpolates_and_names_project(tmp_path):
    path = write_compose(
        tmp_path / "My Project",
        """\
        services:
          web:
            image: "${REGISTRY:-localhost:5001}/web:${TAG}"
            environment:
              - FROM_SHELL
              - MISSING_IN_SHELL
              - SET=1
          db:
            image: db
        """,
    )
    loaded = load_compose_service(path, service="web", project=None, environ={"TAG": "2", "FROM_SHELL": "yes"})
    assert loaded.mapping["image"] == "localhost:5001/web:2"
    assert loaded.mapping["environment"] == ["FROM_SHELL=yes", "SET=1"]
    assert loaded.project == "myproject"
    assert loaded.base_dir == path.parent.resolve()
    assert loaded.service_name == "web"


def test_load_service_environment_map_resolution(tmp_path):
    path = write_compose(tmp_path / "app", "services:\n  web:\n    image: x\n    environment:\n      A:\n      B:\n      C: c\n")
    loaded = load_compose_service(path, service="web", project=None, environ={"A": "from-shell"})
    assert loaded.mapping["environment"] == {"A": "from-shell", "C": "c"}


def test_load_service_project_precedence(tmp_path):
    path = write_compose(tmp_path / "dir", "name: Declared\nservices:\n  web:\n    image: x\n")
    assert load_compose_service(path, service="web", project="Given", environ={}).project == "given"
    assert load_compose_service(path, service="web", project=None, environ={"COMPOSE_PROJECT_NAME": "FromEnv"}).project == "fromenv"
    assert load_compose_service(path, service="web", project=None, environ={}).project == "declared"


def test_load_service_dot_env_file(tmp_path):
    path = write_compose(tmp_path / "proj", "services:\n  web:\n    image: app:${TAG}\n    hostname: ${HOST}\n")
    (tmp_path / "proj" / ".env").write_text("TAG=from-dotenv\nHOST=dotenv-host\n")
    loaded = load_compose_service(path, service="web", project=None, environ={"HOST": "shell-host"})
    assert loaded.mapping["image"] == "app:from-dotenv"
    assert loaded.mapping["hostname"] == "shell-host"


def test_load_service_network_mode_service(tmp_path):
    path = write_compose(
        tmp_path / "proj",
        """\
        services:
          app:
            image: x
            network_mode: "service:vpn"
          named:
            image: x
            network_mode: "service:db"
          vpn:
            image: y
          db:
            image: z
            container_name: the-db
        """,
    )
    assert load_compose_service(path, service="app", project=None, environ={}).mapping["network_mode"] == "container:proj-vpn-1"
    assert load_compose_service(path, service="named", project=None, environ={}).mapping["network_mode"] == "container:the-db"


def test_load_service_network_mode_unknown_service(tmp_path):
    path = write_compose(tmp_path / "proj", "services:\n  app:\n    image: x\n    network_mode: service:ghost\n")
    with pytest.raises(SpecError) as caught:
        load_compose_service(path, service="app", project=None, environ={})
    assert caught.value.field == "services.app.network_mode"
    assert "ghost" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("services: [", "spec.compose_file", "invalid YAML"),
        ("- a\n- b\n", "spec.compose_file", "must be a mapping"),
        ("networks: {}\n", "spec.compose_file", "defines no services"),
        ("services:\n  other:\n    image: x\n", "spec.service", "services are: other"),
        ("services:\n  web: [1]\n", "services.web", "must be a mapping"),
        ("services:\n  web:\n    image: ${X:?set X}\n", "services.web.image", "set X"),
        ("services:\n  web:\n    image: x\nnetworks: [a]\n", "networks", "must be a mapping"),
        ("include: [other.yaml]\nservices:\n  web:\n    image: x\n", "include", "unsupported top-level key"),
    ],
)
def test_load_service_errors(tmp_path, text, field, message):
    path = write_compose(tmp_path / "proj", text)
    with pytest.raises(SpecError) as caught:
        load_compose_service(path, service="web", project=None, environ={})
    assert caught.value.field == field
    assert message in str(caught.value)


def test_load_service_missing_file(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_compose_service(tmp_path / "none.yaml", service="web", project=None, environ={})
    assert caught.value.field == "spec.compose_file"
    assert "not found" in str(caught.value)


def test_compose_plan_defaults(tmp_path):
    path = write_compose(
        tmp_path / "Shop",
        """\
        services:
          web:
            image: localhost:5001/shop/web:1
            volumes: [data:/data, shared:/shared]
          plain:
            image: x
            networks: [front, outside]
        volumes:
          data: {}
          shared:
            external: true
        networks:
          front:
            driver: bridge
            ipam:
              config: [{subnet: 172.28.0.0/16, gateway: 172.28.0.1}]
          outside:
            name: corp-net
            external: true
        """,
    )
    plan = plan_compose_service(load_compose_service(path, service="web", project=None, environ={}), name=None, image=None)
    assert plan.name == "shop-web-1"
    labels = plan.body["Labels"]
    assert labels["com.docker.compose.project"] == "shop"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert plan.body["HostConfig"]["NetworkMode"] == "shop_default"
    assert plan.body["NetworkingConfig"]["EndpointsConfig"] == {"shop_default": {"Aliases": ["web"]}}
    assert plan.body["HostConfig"]["Binds"] == ["shop_data:/data", "shared:/shared"]

    network = plan.networks[0]
    assert network.name == "shop_default"
    assert network.labels == {"dockwright.created-by": "dockwright", "com.docker.compose.project": "shop", "com.docker.compose.network": "default"}
    volumes = {volume.name: volume for volume in plan.volumes}
    assert volumes["shop_data"].labels["com.docker.compose.volume"] == "data"
    assert volumes["shop_data"].labels["dockwright.created-by"] == "dockwright"
    assert volumes["shared"].external

    other = plan_compose_service(load_compose_service(path, service="plain", project="Other", environ={}), name="custom", image="img:2")
    assert other.name == "custom"
    assert other.image == "img:2"
    assert other.body["HostConfig"]["NetworkMode"] == "other_front"
    assert [attachment.name for attachment in other.connect] == ["corp-net"]
    requests = {request.name: request for request in other.networks}
    assert requests["other_front"].ipam == {"Config": [{"Subnet": "172.28.0.0/16", "Gateway": "172.28.0.1"}]}
    assert requests["other_front"].driver == "bridge"
    assert requests["corp-net"].external
    assert requests["corp-net"].labels == {}


def test_compose_plan_env_file_relative(tmp_path):
    path = write_compose(tmp_path / "proj", "services:\n  web:\n    image: x\n    env_file: [conf/app.env]\n    environment: {B: override}\n")
    (tmp_path / "proj" / "conf").mkdir()
    (tmp_path / "proj" / "conf" / "app.env").write_text("A=1\nB=from-file\n")
    plan = plan_compose_service(load_compose_service(path, service="web", project=None, environ={}), name=None, image=None)
    assert plan.body["Env"] == ["A=1", "B=override"]


def test_spec_hash_ignores_dict_order():
    first = plan_service({"image": "x", "environment": {"A": "1", "B": "2"}, "labels": {"a": "1", "b": "2"}}, name="app", image=None)
    second = plan_service({"labels": {"b": "2", "a": "1"}, "environment": {"A": "1", "B": "2"}, "image": "x"}, name="app", image=None)
    assert spec_hash(first) == spec_hash(second)
    assert first.body["Labels"][LABEL_SPEC_HASH] == second.body["Labels"][LABEL_SPEC_HASH]


def test_spec_hash_matches_label():
    plan = plan_service({"image": "x", "ports": ["80"]}, name="app", image=None)
    assert plan.body["Labels"][LABEL_SPEC_HASH] == spec_hash(plan)
    assert len(spec_hash(plan)) == 64


def test_spec_hash_changes_with_spec():
    base = plan_service({"image": "x"}, name="app", image=None)
    assert spec_hash(base) != spec_hash(plan_service({"image": "x:2"}, name="app", image=None))
    assert spec_hash(base) != spec_hash(plan_service({"image": "x", "tty": True}, name="app", image=None))
    with_connect = plan_service({"image": "x", "networks": ["a", "b"]}, name="app", image=None)
    changed = dataclasses.replace(with_connect, connect=())
    assert spec_hash(with_connect) != spec_hash(changed)


def test_load_service_allows_extension_keys(tmp_path):
    path = write_compose(tmp_path / "proj", "version: '3.8'\nx-common: &common\n  image: x\nservices:\n  web:\n    <<: *common\n    tty: true\n")
    loaded = load_compose_service(path, service="web", project=None, environ={})
    assert loaded.mapping == {"image": "x", "tty": True}
