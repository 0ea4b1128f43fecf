"""Recreate carry-over rules for the container config: Env, Labels, Cmd, Healthcheck and more.

The fixtures are real engine 20.10 inspect output: `image_app1` and `image_app2` are two versions
of one image (ENV APP_MODE=one/two, LABEL tier=one/two, ENTRYPOINT /app1 and /entrypoint.sh,
HEALTHCHECK with timeout 2 s/15 s, VOLUME /data, EXPOSE 7000, STOPSIGNAL SIGUSR1 in version 1
only). The containers were created from `image_app1`:

- `plain`: only USER_VAR=x and the label user=yes added.
- `custom`: APP_MODE=custom, API_TOKEN, labels tier=custom and the spec hash, entrypoint,
  cmd, healthcheck, user, working dir, hostname, domain name, stop signal and timeout, tty,
  and a HostConfig with restart policy, resources, capabilities and more.
- `nohealth`: healthcheck disabled and Cmd ["--other"].
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from controller.specs.carryover import describe_changes, plan_recreate

FIXTURES = Path(__file__).parent / "fixtures" / "inspect"
NEW_REF = "localhost:5001/dwfix/app:2"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def old_image() -> dict[str, Any]:
    return load("image_app1")


@pytest.fixture
def new_image() -> dict[str, Any]:
    return load("image_app2")


def plan_body(container: dict[str, Any], old_image: Any, new_image: dict[str, Any]) -> dict[str, Any]:
    return plan_recreate(container, old_image, new_image, name="dwfix-tmp", image_ref=NEW_REF).body


# Environment


def test_env_user_variable_kept_image_ones_follow(old_image, new_image):
    """Only the entries the user added are sent; APP_MODE and PATH come from the new image."""
    body = plan_body(load("container_plain"), old_image, new_image)

    assert body["Env"] == ["USER_VAR=x"]


def test_env_user_override_of_image_variable_kept(old_image, new_image):
    """A user value for an image variable (APP_MODE=custom) stays, and so does every user key."""
    body = plan_body(load("container_custom"), old_image, new_image)

    assert "APP_MODE=custom" in body["Env"]
    assert "API_TOKEN=hunter2" in body["Env"]
    assert not any(entry.startswith("PATH=") for entry in body["Env"])
    assert not any(entry.startswith("SHARED=") for entry in body["Env"])


def test_env_absent_when_user_set_nothing(old_image, new_image):
    body = plan_body(load("container_rich"), old_image, new_image)

    assert "Env" not in body


def test_env_entry_without_value_kept(old_image, new_image):
    """An Env entry without `=` is the user's (the image has only KEY=VALUE entries)."""
    container = load("container_plain")
    container["Config"]["Env"].append("BARE")

    body = plan_body(container, old_image, new_image)

    assert body["Env"] == ["USER_VAR=x", "BARE"]


def test_describe_env_shows_keys_not_values(old_image, new_image):
    lines = describe_changes(load("container_custom"), old_image, new_image)

    assert "environment: keeps APP_MODE, API_TOKEN" in lines
    assert not any("hunter2" in line for line in lines)


def test_describe_env_variable_new_image_drops(old_image, new_image):
    new_image = copy.deepcopy(new_image)
    new_image["Config"]["Env"] = [e for e in new_image["Config"]["Env"] if not e.startswith("SHARED=")]

    lines = describe_changes(load("container_plain"), old_image, new_image)

    assert "environment: the new image no longer sets SHARED" in lines


# Labels


def test_labels_user_label_kept_image_ones_follow(old_image, new_image):
    body = plan_body(load("container_plain"), old_image, new_image)

    assert body["Labels"] == {"user": "yes"}


def test_labels_user_override_of_image_label_kept(old_image, new_image):
    body = plan_body(load("container_custom"), old_image, new_image)

    assert body["Labels"]["tier"] == "custom"
    assert "com.example.shared" not in body["Labels"]


def test_labels_spec_hash_kept_even_if_image_has_it(old_image, new_image):
    """The spec-hash label is kept as it is, even when the old image carries the same value."""
    old_image = copy.deepcopy(old_image)
    old_image["Config"]["Labels"]["dockwright.spec-hash"] = "abc123"

    body = plan_body(load("container_custom"), old_image, new_image)

    assert body["Labels"]["dockwright.spec-hash"] == "abc123"


def test_labels_absent_when_user_set_none(old_image, new_image):
    body = plan_body(load("container_rich"), old_image, new_image)

    assert "Labels" not in body


# Entrypoint and Cmd


def test_command_defaults_follow_new_image(old_image, new_image):
    """No override: neither is sent, so the new image's /entrypoint.sh runs."""
    body = plan_body(load("container_plain"), old_image, new_image)

    assert "Entrypoint" not in body
    assert "Cmd" not in body


def test_command_cmd_only_override_kept(old_image, new_image):
    body = plan_body(load("container_nohealth"), old_image, new_image)

    assert body["Cmd"] == ["--other"]
    assert "Entrypoint" not in body


def test_command_entrypoint_override_keeps_both(old_image, new_image):
    body = plan_body(load("container_custom"), old_image, new_image)

    assert body["Entrypoint"] == ["/bin/sh", "-c"]
    assert body["Cmd"] == ["exec /app1"]


def test_command_cmd_equal_to_image_kept_with_entrypoint(old_image, new_image):
    """With a user entrypoint the engine never adds the image's Cmd, so an equal Cmd is the user's."""
    container = load("container_custom")
    container["Config"]["Cmd"] = ["--from-image-1"]

    body = plan_body(container, old_image, new_image)

    assert body["Cmd"] == ["--from-image-1"]


def test_command_entrypoint_without_cmd(old_image, new_image):
    container = load("container_custom")
    container["Config"]["Cmd"] = None

    body = plan_body(container, old_image, new_image)

    assert body["Entrypoint"] == ["/bin/sh", "-c"]
    assert "Cmd" not in body


def test_command_empty_entrypoint_override_kept(old_image, new_image):
    """`--entrypoint ""` shows as [""] and clears the image's entrypoint; it must stay cleared."""
    container = load("container_plain")
    container["Config"]["Entrypoint"] = [""]
    container["Config"]["Cmd"] = ["sleep", "60"]

    body = plan_body(container, old_image, new_image)

    assert body["Entrypoint"] == [""]
    assert body["Cmd"] == ["sleep", "60"]


# Healthcheck


def test_healthcheck_inherited_follows_new_image(old_image, new_image):
    body = plan_body(load("container_plain"), old_image, new_image)

    assert "Healthcheck" not in body


def test_healthcheck_user_set_kept_exactly(old_image, new_image):
    container = load("container_custom")

    body = plan_body(container, old_image, new_image)

    assert body["Healthcheck"] == container["Config"]["Healthcheck"]


def test_healthcheck_disabled_kept_exactly(old_image, new_image):
    """The engine merges the image's timings into a disabled check; all of it is kept."""
    container = load("container_nohealth")

    body = plan_body(container, old_image, new_image)

    assert body["Healthcheck"] == container["Config"]["Healthcheck"]
    assert body["Healthcheck"]["Test"] == ["NONE"]


def test_healthcheck_zero_fields_still_default(old_image, new_image):
    """A zero StartPeriod shown in inspect but omitted in the image is still the image's check."""
    container = load("container_plain")
    container["Config"]["Healthcheck"]["StartPeriod"] = 0

    body = plan_body(container, old_image, new_image)

    assert "Healthcheck" not in body


def test_describe_healthcheck_disabled(old_image, new_image):
    lines = describe_changes(load("container_nohealth"), old_image, new_image)

    assert "healthcheck: stays disabled" in lines


# Other Config fields


def test_config_user_fields_kept(old_image, new_image):
    body = plan_body(load("container_custom"), old_image, new_image)

    assert body["User"] == "1000:1000"
    assert body["WorkingDir"] == "/tmp"
    assert body["StopSignal"] == "SIGINT"
    assert body["StopTimeout"] == 30
    assert body["Hostname"] == "myhost"
    assert body["Domainname"] == "example.test"
    assert body["Tty"] is True
    assert body["OpenStdin"] is True


def test_config_image_fields_follow(old_image, new_image):
    """WorkingDir /srv and STOPSIGNAL SIGUSR1 came from the old image, so they are not sent."""
    body = plan_body(load("container_plain"), old_image, new_image)

    assert "WorkingDir" not in body
    assert "StopSignal" not in body
    assert "User" not in body
    assert "StopTimeout" not in body


def test_config_engine_hostname_not_kept(old_image, new_image):
    """The engine sets the hostname to the short id; the new container gets its own."""
    body = plan_body(load("container_plain"), old_image, new_image)

    assert "Hostname" not in body


def test_config_image_becomes_new_reference(old_image, new_image):
    plan = plan_recreate(load("container_plain"), old_image, new_image, name="dwfix-tmp", image_ref=NEW_REF)

    assert plan.body["Image"] == NEW_REF
    assert plan.image == NEW_REF
    assert plan.name == "dwfix-tmp"


@pytest.mark.parametrize(
    "field",
    ["Id", "Name", "Created", "State", "Path", "Args", "ResolvConfPath", "NetworkSettings", "Mounts", "OnBuild"],
)
def test_config_runtime_fields_dropped(old_image, new_image, field):
    body = plan_body(load("container_custom"), old_image, new_image)

    assert field not in body


def test_exposed_ports_image_ones_follow(old_image, new_image):
    """EXPOSE 7000 came from the image, so it is not sent."""
    body = plan_body(load("container_plain"), old_image, new_image)

    assert "ExposedPorts" not in body


def test_exposed_ports_user_port_kept(old_image, new_image):
    container = load("container_plain")
    container["Config"]["ExposedPorts"]["9000/udp"] = {}

    body = plan_body(container, old_image, new_image)

    assert body["ExposedPorts"] == {"9000/udp": {}}


def test_exposed_ports_include_published_ports(old_image, new_image):
    """A port binding without EXPOSE adds its port, so the binding is accepted."""
    body = plan_body(load("container_rich"), old_image, new_image)

    assert body["ExposedPorts"] == {"5000/tcp": {}}


def test_volumes_image_ones_follow(old_image, new_image):
    body = plan_body(load("container_plain"), old_image, new_image)

    assert "Volumes" not in body


def test_volumes_user_path_kept(old_image, new_image):
    container = load("container_plain")
    container["Config"]["Volumes"]["/cache"] = {}

    body = plan_body(container, old_image, new_image)

    assert body["Volumes"] == {"/cache": {}}


# Old image gone


def test_old_image_gone_keeps_what_differs_from_new(new_image):
    """Without the old image, old defaults cannot be told from user values and are kept."""
    body = plan_body(load("container_plain"), None, new_image)

    assert "USER_VAR=x" in body["Env"]
    assert "APP_MODE=one" in body["Env"]
    assert "SHARED=same" not in body["Env"]
    assert body["Entrypoint"] == ["/app1"]
    assert body["Labels"] == {"tier": "one", "user": "yes"}


def test_old_image_gone_described(new_image):
    lines = describe_changes(load("container_plain"), None, new_image)

    assert any(line.startswith("old image not found") for line in lines)


def test_invalid_inspect_output_rejected(old_image, new_image):
    with pytest.raises(ValueError, match="no Config or HostConfig"):
        plan_recreate({"Id": "abc"}, old_image, new_image, name="dwfix-tmp", image_ref=NEW_REF)
