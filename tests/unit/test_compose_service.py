"""Compose service keys other than ports, volumes and networks, and the plan's names."""

from __future__ import annotations

import pytest

from controller.errors import SpecError
from controller.specs.compose import SUPPORTED_KEYS, plan_service

SECOND = 1_000_000_000


def body_of(spec, **kwargs):
    return plan_service({"image": "x", **spec}, name="app", image=None, **kwargs).body


def host_of(spec, **kwargs):
    return body_of(spec, **kwargs)["HostConfig"]


def error_of(spec, **kwargs):
    with pytest.raises(SpecError) as caught:
        plan_service({"image": "x", **spec}, name="app", image=None, **kwargs)
    return caught.value


# --- names and images ----------------------------------------------------------------------


def test_columns_take_precedence():
    plan = plan_service({"image": "spec-image", "container_name": "spec-name"}, name="row-name", image="row-image")
    assert plan.name == "row-name"
    assert plan.image == "row-image"
    assert plan.body["Image"] == "row-image"


def test_spec_names_used_without_columns():
    plan = plan_service({"image": "spec-image", "container_name": "spec-name"}, name=None, image=None)
    assert plan.name == "spec-name"
    assert plan.image == "spec-image"


def test_compose_default_name():
    plan = plan_service({"image": "x"}, name=None, image=None, project="shop", service_name="web")
    assert plan.name == "shop-web-1"


def test_missing_image():
    with pytest.raises(SpecError) as caught:
        plan_service({}, name="app", image=None)
    assert caught.value.field == "image"
    assert "set the image column or spec.image" in str(caught.value)


def test_missing_name_inline():
    with pytest.raises(SpecError) as caught:
        plan_service({"image": "x"}, name=None, image=None)
    assert caught.value.field == "container"


@pytest.mark.parametrize("name", ["a", "-lead", "has space", "slash/name"])
def test_invalid_container_name(name):
    with pytest.raises(SpecError) as caught:
        plan_service({"image": "x"}, name=name, image=None)
    assert caught.value.field == "container"
    with pytest.raises(SpecError) as caught_spec:
        plan_service({"image": "x", "container_name": name}, name=None, image=None)
    assert caught_spec.value.field == "spec.container_name"


@pytest.mark.parametrize("image", ["", "has space", 5])
def test_invalid_image(image):
    assert error_of({"image": image}).field == "spec.image"


def test_project_needs_service_name():
    with pytest.raises(SpecError) as caught:
        plan_service({"image": "x"}, name=None, image=None, project="shop")
    assert caught.value.field == "spec.service"


def test_service_must_be_mapping():
    with pytest.raises(SpecError) as caught:
        plan_service(["image", "x"], name="app", image=None)
    assert caught.value.field == "spec"


# --- unsupported keys ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["build", "depends_on", "secrets", "links", "scale", "extends", "volumes_from"])
def test_unsupported_key(key):
    error = error_of({key: "anything"})
    assert error.field == f"spec.{key}"
    assert "unsupported key; supported keys are:" in str(error)
    assert "environment" in str(error)


def test_unsupported_key_uses_prefix():
    with pytest.raises(SpecError) as caught:
        plan_service({"image": "x", "build": "."}, name="app", image=None, field_prefix="services.web")
    assert caught.value.field == "services.web.build"


def test_extension_keys_are_ignored():
    assert body_of({"x-team": {"owner": "me"}}) == body_of({})


def test_platform_rejected_for_now():
    error = error_of({"platform": "linux/amd64"})
    assert error.field == "spec.platform"
    assert "not supported yet" in str(error)


def test_supported_keys_cover_design_list():
    design = (
        "image command entrypoint environment env_file ports volumes networks network_mode labels restart "
        "healthcheck user working_dir hostname extra_hosts dns cap_add cap_drop devices read_only tmpfs ulimits "
        "stop_signal stop_grace_period mem_limit cpus logging init shm_size sysctls"
    ).split()
    for key in design:
        assert key in SUPPORTED_KEYS, key


# --- command and entrypoint ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        ("npm start", ["npm", "start"]),
        ("sh -c 'echo \"$HOME\" && sleep 1'", ["sh", "-c", 'echo "$HOME" && sleep 1']),
        (["echo", "a b"], ["echo", "a b"]),
        (["sleep", 5], ["sleep", "5"]),
        ([], []),
    ],
)
def test_command(value, argv):
    assert body_of({"command": value})["Cmd"] == argv


def test_command_null_keeps_image_default():
    assert "Cmd" not in body_of({"command": None})


@pytest.mark.parametrize(("value", "argv"), [("/entry.sh --flag", ["/entry.sh", "--flag"]), (["/bin/sh", "-c"], ["/bin/sh", "-c"]), ("", [""]), ([], [""])])
def test_entrypoint(value, argv):
    assert body_of({"entrypoint": value})["Entrypoint"] == argv


@pytest.mark.parametrize(("key", "value"), [("command", "echo 'open"), ("command", {"a": 1}), ("entrypoint", 5), ("command", [["nested"]])])
def test_invalid_command(key, value):
    assert error_of({key: value}).field.startswith(f"spec.{key}")


# --- environment and env_file --------------------------------------------------------------


def test_environment_map():
    env = body_of({"environment": {"MODE": "demo", "COUNT": 3, "DEBUG": True, "RATIO": 0.5, "UNSET": None, "EMPTY": ""}})["Env"]
    assert env == ["MODE=demo", "COUNT=3", "DEBUG=true", "RATIO=0.5", "EMPTY="]


def test_environment_list():
    env = body_of({"environment": ["MODE=demo", "URL=a=b", "UNSET", "EMPTY="]})["Env"]
    assert env == ["MODE=demo", "URL=a=b", "EMPTY="]


@pytest.mark.parametrize(("value", "field"), [("MODE=demo", "spec.environment"), ([5], "spec.environment[0]"), (["=x"], "spec.environment[0]"), ({"A": [1]}, "spec.environment.A")])
def test_invalid_environment(value, field):
    assert error_of({"environment": value}).field == field


def test_env_file_forms(tmp_path):
    (tmp_path / "a.env").write_text("A=1\nSHARED=from-a\n")
    (tmp_path / "b.env").write_text("B=2\nSHARED=from-b\nBARE\n")
    assert body_of({"env_file": "a.env"}, base_dir=tmp_path)["Env"] == ["A=1", "SHARED=from-a"]
    assert body_of({"env_file": ["a.env", "b.env"]}, base_dir=tmp_path)["Env"] == ["A=1", "SHARED=from-b", "B=2"]
    long_form = {"env_file": [{"path": "a.env"}, {"path": "missing.env", "required": False}]}
    assert body_of(long_form, base_dir=tmp_path)["Env"] == ["A=1", "SHARED=from-a"]
    assert body_of({"env_file": str(tmp_path / "b.env"), "environment": {"SHARED": "env"}})["Env"] == ["B=2", "SHARED=env"]


def test_env_file_errors(tmp_path):
    missing = error_of({"env_file": ["missing.env"]}, base_dir=tmp_path)
    assert missing.field == "spec.env_file[0]"
    assert "file not found" in str(missing)
    relative = error_of({"env_file": "a.env"})
    assert relative.field == "spec.env_file"
    assert "absolute path" in str(relative)
    assert error_of({"env_file": [{"required": True}]}, base_dir=tmp_path).field == "spec.env_file[0].path"
    assert error_of({"env_file": [{"path": "a", "format": "raw"}]}, base_dir=tmp_path).field == "spec.env_file[0].format"
    assert error_of({"env_file": 5}).field == "spec.env_file"


def test_env_file_nul_path_rejected(tmp_path):
    error = error_of({"env_file": "/tmp/a\x00.env"}, base_dir=tmp_path)

    assert error.field == "spec.env_file"
    assert "NUL" in str(error)


# --- labels, sysctls, extra_hosts ----------------------------------------------------------


def test_labels_forms():
    assert body_of({"labels": {"a": "1", "b": 2, "c": None}})["Labels"]["b"] == "2"
    labels = body_of({"labels": ["a=1", "flag"]})["Labels"]
    assert labels["a"] == "1"
    assert labels["flag"] == ""
    assert labels["dockwright.created-by"] == "dockwright"
    assert "dockwright.spec-hash" in labels


def test_invalid_labels():
    assert error_of({"labels": "a=1"}).field == "spec.labels"


def test_sysctls_forms():
    assert host_of({"sysctls": {"net.core.somaxconn": 1024}})["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host_of({"sysctls": ["net.ipv4.ip_forward=1"]})["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert error_of({"sysctls": ["net.ipv4.ip_forward"]}).field == "spec.sysctls.net.ipv4.ip_forward"


def test_extra_hosts_forms():
    assert host_of({"extra_hosts": ["db:10.0.0.5", "v6=::1", "v6b:::2"]})["ExtraHosts"] == ["db:10.0.0.5", "v6:::1", "v6b:::2"]
    assert host_of({"extra_hosts": {"db": "10.0.0.5", "v6": "[::1]"}})["ExtraHosts"] == ["db:10.0.0.5", "v6:::1"]
    assert error_of({"extra_hosts": ["nohost"]}).field == "spec.extra_hosts[0]"
    assert error_of({"extra_hosts": "db:1.2.3.4"}).field == "spec.extra_hosts"


# --- restart and healthcheck ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        ("no", {"Name": "no"}),
        ("always", {"Name": "always"}),
        ("on-failure", {"Name": "on-failure"}),
        ("on-failure:5", {"Name": "on-failure", "MaximumRetryCount": 5}),
        ("unless-stopped", {"Name": "unless-stopped"}),
    ],
)
def test_restart(value, policy):
    assert host_of({"restart": value})["RestartPolicy"] == policy


@pytest.mark.parametrize("value", ["sometimes", "always:3", "on-failure:x", "on-failure:-1", False])
def test_invalid_restart(value):
    assert error_of({"restart": value}).field == "spec.restart"


def test_healthcheck_full():
    healthcheck = body_of(
        {"healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "1m30s", "timeout": "10s", "retries": 3, "start_period": "500ms"}}
    )["Healthcheck"]
    assert healthcheck == {
        "Test": ["CMD", "curl", "-f", "http://localhost"],
        "Interval": 90 * SECOND,
        "Timeout": 10 * SECOND,
        "StartPeriod": 500_000_000,
        "Retries": 3,
    }


@pytest.mark.parametrize(
    ("test", "expected"),
    [("curl -f http://x || exit 1", ["CMD-SHELL", "curl -f http://x || exit 1"]), ("NONE", ["NONE"]), (["NONE"], ["NONE"]), (["CMD-SHELL", "true"], ["CMD-SHELL", "true"])],
)
def test_healthcheck_test_forms(test, expected):
    assert body_of({"healthcheck": {"test": test}})["Healthcheck"]["Test"] == expected


def test_healthcheck_disable():
    assert body_of({"healthcheck": {"disable": True}})["Healthcheck"] == {"Test": ["NONE"]}
    assert body_of({"healthcheck": {"disable": False, "interval": "5s"}})["Healthcheck"] == {"Interval": 5 * SECOND}


@pytest.mark.parametrize(
    ("healthcheck", "field"),
    [
        ({"test": ["curl"]}, "spec.healthcheck.test"),
        ({"test": ["CMD"]}, "spec.healthcheck.test"),
        ({"test": 5}, "spec.healthcheck.test"),
        ({"interval": "soon"}, "spec.healthcheck.interval"),
        ({"timeout": "10"}, "spec.healthcheck.timeout"),
        ({"retries": -1}, "spec.healthcheck.retries"),
        ({"start_interval": "1s"}, "spec.healthcheck.start_interval"),
        ({"disable": True, "test": ["CMD", "true"]}, "spec.healthcheck.test"),
        ({"disable": "maybe"}, "spec.healthcheck.disable"),
    ],
)
def test_invalid_healthcheck(healthcheck, field):
    assert error_of({"healthcheck": healthcheck}).field == field


def test_healthcheck_must_be_mapping():
    assert error_of({"healthcheck": ["CMD", "true"]}).field == "spec.healthcheck"


# --- simple container and host fields ------------------------------------------------------


def test_config_strings_and_bools():
    body = body_of(
        {
            "user": 1000,
            "working_dir": "/app",
            "hostname": "web",
            "domainname": "example.test",
            "stop_signal": "SIGINT",
            "mac_address": "02:42:ac:11:00:02",
            "tty": True,
            "stdin_open": "true",
        }
    )
    assert body["User"] == "1000"
    assert body["WorkingDir"] == "/app"
    assert body["Hostname"] == "web"
    assert body["Domainname"] == "example.test"
    assert body["StopSignal"] == "SIGINT"
    assert body["MacAddress"] == "02:42:ac:11:00:02"
    assert body["Tty"] is True
    assert body["OpenStdin"] is True


def test_user_string():
    assert body_of({"user": "app:app"})["User"] == "app:app"


def test_host_fields():
    host = host_of(
        {
            "read_only": True,
            "init": True,
            "privileged": False,
            "oom_kill_disable": True,
            "cap_add": ["NET_ADMIN"],
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "dns": "1.1.1.1",
            "dns_search": ["example.test"],
            "dns_opt": "ndots:2",
            "group_add": ["audio", 44],
            "ipc": "private",
            "pid": "host",
            "userns_mode": "host",
            "cgroup_parent": "/custom",
            "runtime": "runc",
            "cpuset": "0-1",
            "cpu_shares": 512,
            "pids_limit": -1,
            "cpu_quota": 50000,
            "cpu_period": 100000,
            "oom_score_adj": -500,
        }
    )

    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert host["Privileged"] is False
    assert host["OomKillDisable"] is True
    assert host["CapAdd"] == ["NET_ADMIN"]
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Dns"] == ["1.1.1.1"]
    assert host["DnsSearch"] == ["example.test"]
    assert host["DnsOptions"] == ["ndots:2"]
    assert host["GroupAdd"] == ["audio", "44"]
    assert host["IpcMode"] == "private"
    assert host["PidMode"] == "host"
    assert host["UsernsMode"] == "host"
    assert host["CgroupParent"] == "/custom"
    assert host["Runtime"] == "runc"
    assert host["CpusetCpus"] == "0-1"
    assert host["CpuShares"] == 512
    assert host["PidsLimit"] == -1
    assert host["CpuQuota"] == 50000
    assert host["CpuPeriod"] == 100000
    assert host["OomScoreAdj"] == -500


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("read_only", "maybe"),
        ("init", 1),
        ("cap_add", "NET_ADMIN"),
        ("cap_drop", [1]),
        ("dns", 5),
        ("cpu_shares", "lots"),
        ("cpu_shares", -1),
        ("pids_limit", -2),
        ("pids_limit", 1.5),
        ("oom_score_adj", -1001),
        ("user", 1.5),
        ("hostname", ""),
        ("tty", "sometimes"),
        ("group_add", "audio"),
        ("ipc", 5),
    ],
)
def test_invalid_simple_fields(key, value):
    error = error_of({key: value})
    assert error.field.startswith(f"spec.{key}")
    assert "expected" in str(error)


# --- resources -----------------------------------------------------------------------------


def test_memory_and_cpus():
    host = host_of({"mem_limit": "512m", "memswap_limit": "1g", "mem_reservation": "256m", "shm_size": "64m", "cpus": "1.5"})
    assert host["Memory"] == 512 * 1024**2
    assert host["MemorySwap"] == 1024**3
    assert host["MemoryReservation"] == 256 * 1024**2
    assert host["ShmSize"] == 64 * 1024**2
    assert host["NanoCpus"] == 1_500_000_000


def test_memswap_unlimited():
    assert host_of({"memswap_limit": -1})["MemorySwap"] == -1
    assert host_of({"memswap_limit": "-1"})["MemorySwap"] == -1


def test_deploy_limits():
    host = host_of({"deploy": {"resources": {"limits": {"memory": "1g", "cpus": "0.25", "pids": 100}, "reservations": {"memory": "128m"}}}})
    assert host["Memory"] == 1024**3
    assert host["NanoCpus"] == 250_000_000
    assert host["PidsLimit"] == 100
    assert host["MemoryReservation"] == 128 * 1024**2


def test_deploy_agrees_with_mem_limit():
    assert host_of({"mem_limit": "1g", "deploy": {"resources": {"limits": {"memory": "1024m"}}}})["Memory"] == 1024**3


def test_deploy_conflicts_with_mem_limit():
    error = error_of({"mem_limit": "512m", "deploy": {"resources": {"limits": {"memory": "1g"}}}})
    assert error.field == "spec.deploy.resources.limits.memory"
    assert "conflicts" in str(error)


def test_cpus_conflict_either_order():
    assert error_of({"deploy": {"resources": {"limits": {"cpus": 1}}}, "cpus": 2}).field == "spec.cpus"


@pytest.mark.parametrize(
    ("deploy", "field"),
    [
        ({"replicas": 2}, "spec.deploy.replicas"),
        ({"resources": {"limits": {"devices": []}}}, "spec.deploy.resources.limits.devices"),
        ({"resources": {"reservations": {"cpus": 1}}}, "spec.deploy.resources.reservations.cpus"),
        ({"resources": {"limits": {"memory": "lots"}}}, "spec.deploy.resources.limits.memory"),
        ({"resources": {"limits": {"cpus": "many"}}}, "spec.deploy.resources.limits.cpus"),
        ({"resources": []}, "spec.deploy.resources"),
        ("swarm", "spec.deploy"),
    ],
)
def test_invalid_deploy(deploy, field):
    assert error_of({"deploy": deploy}).field == field


@pytest.mark.parametrize(("key", "value"), [("mem_limit", "lots"), ("memswap_limit", "x"), ("shm_size", True), ("cpus", "two"), ("cpus", -1), ("mem_reservation", [])])
def test_invalid_resources(key, value):
    assert error_of({key: value}).field == f"spec.{key}"


# --- ulimits, stop, logging, pull policy ---------------------------------------------------


def test_ulimits():
    ulimits = host_of({"ulimits": {"nproc": 65535, "nofile": {"soft": 20000, "hard": 40000}, "core": "0"}})["Ulimits"]
    assert ulimits == [
        {"Name": "nproc", "Soft": 65535, "Hard": 65535},
        {"Name": "nofile", "Soft": 20000, "Hard": 40000},
        {"Name": "core", "Soft": 0, "Hard": 0},
    ]


@pytest.mark.parametrize(
    ("ulimits", "field"),
    [
        ({"nofile": {"soft": 10}}, "spec.ulimits.nofile"),
        ({"nofile": {"soft": 10, "hard": 5}}, "spec.ulimits.nofile"),
        ({"nofile": {"soft": 1, "hard": 2, "max": 3}}, "spec.ulimits.nofile.max"),
        ({"nofile": "many"}, "spec.ulimits.nofile"),
        (["nofile=1"], "spec.ulimits"),
    ],
)
def test_invalid_ulimits(ulimits, field):
    assert error_of({"ulimits": ulimits}).field == field


@pytest.mark.parametrize(("value", "seconds"), [("10s", 10), ("1m30s", 90), ("500ms", 1), (20, 20), ("0s", 0)])
def test_stop_grace_period(value, seconds):
    assert body_of({"stop_grace_period": value})["StopTimeout"] == seconds


def test_invalid_stop_grace_period():
    error = error_of({"stop_grace_period": "forever"})
    assert error.field == "spec.stop_grace_period"
    assert "'forever'" in str(error)


def test_logging():
    host = host_of({"logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": 3}}})
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert host_of({"logging": {"options": {"tag": "x"}}})["LogConfig"] == {"Type": "", "Config": {"tag": "x"}}


@pytest.mark.parametrize(("logging", "field"), [("json-file", "spec.logging"), ({"driver": 5}, "spec.logging.driver"), ({"opts": {}}, "spec.logging.opts"), ({"options": ["a"]}, "spec.logging.options")])
def test_invalid_logging(logging, field):
    assert error_of({"logging": logging}).field == field


@pytest.mark.parametrize(("value", "policy"), [("always", "always"), ("never", "never"), ("missing", "missing"), ("if_not_present", "missing")])
def test_pull_policy(value, policy):
    assert plan_service({"image": "x", "pull_policy": value}, name="app", image=None).pull_policy == policy


@pytest.mark.parametrize("value", ["build", "daily", "sometimes", 1])
def test_invalid_pull_policy(value):
    assert error_of({"pull_policy": value}).field == "spec.pull_policy"


def test_body_shape_minimal():
    body = body_of({})
    assert set(body) == {"Image", "Labels", "HostConfig"}
    assert body["HostConfig"] == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cpus", float("inf")),
        ("cpus", 1e300),
        ("cpus", "nan"),
        ("mem_limit", 1e300),
        ("mem_limit", "99999999999999999999p"),
        ("shm_size", 2**64),
        ("stop_grace_period", 1e300),
        ("pids_limit", 2**70),
        ("cpu_shares", "99999999999999999999999"),
    ],
)
def test_values_beyond_int64(key, value):
    error = error_of({key: value})
    assert error.field == f"spec.{key}"
