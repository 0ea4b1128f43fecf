"""docker CLI renderings of plans, network and volume requests, and plain commands."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from controller.specs.cli_render import (
    render_command,
    render_create,
    render_network_connect,
    render_network_create,
    render_volume_create,
)
from controller.specs.compose import plan_service
from controller.specs.plan import NetworkAttachment, NetworkRequest, VolumeRequest
from controller.specs.redact import is_secret_name

RICH_SPEC = {
    "image": "localhost:5001/demo/web:1",
    "entrypoint": ["/bin/sh", "-c"],
    "command": ["echo \"$MODE\" && sleep 60"],
    "environment": {"MODE": "demo", "DB_PASSWORD": "hunter2", "api_token": "abc"},
    "labels": {"team": "web", "deploy.secret": "s3cr3t"},
    "ports": ["127.0.0.1:18080:8080", "53:53/udp", "[::1]::9000", "7000"],
    "expose": ["9100"],
    "volumes": [
        "data:/data:ro",
        "/cache",
        {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": "64m", "mode": "1777"}},
        {"type": "volume", "source": "logs", "target": "/logs", "read_only": True, "volume": {"nocopy": True}},
        {"type": "bind", "source": "/srv/site", "target": "/www", "bind": {"propagation": "rslave"}},
    ],
    "tmpfs": ["/run:size=16m"],
    "networks": {"front": {"aliases": ["site", "www"], "ipv4_address": "172.30.0.5"}, "back": None},
    "restart": "on-failure:3",
    "healthcheck": {"test": "wget -q -O- http://localhost:8080/ || exit 1", "interval": "1m30s", "timeout": "5s", "retries": 4, "start_period": "500ms"},
    "user": "1000:1000",
    "working_dir": "/app",
    "hostname": "web",
    "domainname": "example.test",
    "extra_hosts": ["db:10.0.0.5"],
    "dns": ["1.1.1.1"],
    "dns_search": "example.test",
    "cap_add": ["NET_ADMIN"],
    "cap_drop": ["ALL"],
    "devices": ["/dev/fuse"],
    "read_only": True,
    "ulimits": {"nofile": {"soft": 1024, "hard": 2048}},
    "stop_signal": "SIGINT",
    "stop_grace_period": "30s",
    "mem_limit": "512m",
    "memswap_limit": -1,
    "cpus": 0.5,
    "pids_limit": 100,
    "logging": {"driver": "json-file", "options": {"max-size": "10m"}},
    "init": True,
    "shm_size": "64m",
    "sysctls": {"net.core.somaxconn": 1024},
    "privileged": True,
    "security_opt": ["no-new-privileges:true"],
    "tty": True,
    "stdin_open": True,
    "group_add": ["audio"],
    "pull_policy": "always",
}


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[index + 1] for index, word in enumerate(argv[:-1]) if word == flag]


def rich_argv() -> tuple[list[str], str]:
    rendered = render_create(plan_service(RICH_SPEC, name="web", image=None))
    return shlex.split(rendered), rendered


def test_create_name_image_and_command():
    argv, _ = rich_argv()
    assert argv[:4] == ["docker", "create", "--name", "web"]
    image_index = argv.index("localhost:5001/demo/web:1")
    assert argv[image_index + 1 :] == ["-c", 'echo "$MODE" && sleep 60']
    assert flag_values(argv, "--entrypoint") == ["/bin/sh"]


def test_create_masks_secrets():
    argv, rendered = rich_argv()
    assert flag_values(argv, "-e") == ["MODE=demo", "DB_PASSWORD=***", "api_token=***"]
    assert "hunter2" not in rendered
    assert "abc" not in rendered.replace("localhost", "")
    assert "s3cr3t" not in rendered
    assert "deploy.secret=***" in flag_values(argv, "--label")
    assert "team=web" in flag_values(argv, "--label")


def test_create_ports_and_expose():
    argv, _ = rich_argv()
    assert flag_values(argv, "-p") == ["127.0.0.1:18080:8080", "53:53/udp", "[::1]::9000", "7000"]
    assert flag_values(argv, "--expose") == ["9100/tcp"]


def test_create_storage_flags():
    argv, _ = rich_argv()
    assert flag_values(argv, "-v") == ["/cache", "data:/data:ro"]
    assert flag_values(argv, "--mount") == [
        "type=tmpfs,target=/scratch,tmpfs-size=67108864,tmpfs-mode=1777",
        "type=volume,source=logs,target=/logs,readonly,volume-nocopy",
        "type=bind,source=/srv/site,target=/www,bind-propagation=rslave",
    ]
    assert flag_values(argv, "--tmpfs") == ["/run:size=16m"]
    assert flag_values(argv, "--device") == ["/dev/fuse:/dev/fuse:rwm"]


def test_create_network_flags():
    argv, _ = rich_argv()
    assert flag_values(argv, "--network") == ["back"]
    assert flag_values(argv, "--network-alias") == []
    plan = plan_service({"image": "x", "networks": {"front": {"aliases": ["site", "www"], "ipv4_address": "172.30.0.5", "ipv6_address": "fd00::5"}}}, name="web", image=None)
    argv = shlex.split(render_create(plan))
    assert flag_values(argv, "--network") == ["front"]
    assert flag_values(argv, "--network-alias") == ["site", "www"]
    assert flag_values(argv, "--ip") == ["172.30.0.5"]
    assert flag_values(argv, "--ip6") == ["fd00::5"]


def test_create_scalar_flags():
    argv, _ = rich_argv()
    expected = {
        "--restart": ["on-failure:3"],
        "--health-cmd": ["wget -q -O- http://localhost:8080/ || exit 1"],
        "--health-interval": ["1m30s"],
        "--health-timeout": ["5s"],
        "--health-retries": ["4"],
        "--health-start-period": ["500ms"],
        "--user": ["1000:1000"],
        "--workdir": ["/app"],
        "--hostname": ["web"],
        "--domainname": ["example.test"],
        "--add-host": ["db:10.0.0.5"],
        "--dns": ["1.1.1.1"],
        "--dns-search": ["example.test"],
        "--cap-add": ["NET_ADMIN"],
        "--cap-drop": ["ALL"],
        "--ulimit": ["nofile=1024:2048"],
        "--stop-signal": ["SIGINT"],
        "--stop-timeout": ["30"],
        "--memory": [str(512 * 1024**2)],
        "--memory-swap": ["-1"],
        "--cpus": ["0.5"],
        "--pids-limit": ["100"],
        "--log-driver": ["json-file"],
        "--log-opt": ["max-size=10m"],
        "--shm-size": [str(64 * 1024**2)],
        "--sysctl": ["net.core.somaxconn=1024"],
        "--security-opt": ["no-new-privileges:true"],
        "--group-add": ["audio"],
        "--pull": ["always"],
    }
    for flag, values in expected.items():
        assert flag_values(argv, flag) == values, flag


def test_create_boolean_flags():
    argv, _ = rich_argv()
    for flag in ("--read-only", "--init", "--privileged", "--tty", "--interactive"):
        assert flag in argv, flag


def test_create_healthcheck_variants():
    disabled = shlex.split(render_create(plan_service({"image": "x", "healthcheck": {"disable": True}}, name="app", image=None)))
    assert "--no-healthcheck" in disabled
    exec_form = shlex.split(render_create(plan_service({"image": "x", "healthcheck": {"test": ["CMD", "curl", "-f", "http://x/a b"]}}, name="app", image=None)))
    assert flag_values(exec_form, "--health-cmd") == ["curl -f 'http://x/a b'"]


def test_create_minimal():
    rendered = render_create(plan_service({"image": "busybox"}, name="app", image=None))
    argv = shlex.split(rendered)
    assert argv[:4] == ["docker", "create", "--name", "app"]
    assert argv[-1] == "busybox"
    assert "--entrypoint" not in argv


def test_network_connect():
    attachment = NetworkAttachment(name="back", aliases=("api", "svc"), ipv4_address="172.30.0.9", ipv6_address="fd00::9", extra={"DriverOpts": {"k": "v"}})
    argv = shlex.split(render_network_connect("back", "web", attachment))
    assert argv == ["docker", "network", "connect", "--alias", "api", "--alias", "svc", "--ip", "172.30.0.9", "--ip6", "fd00::9", "--driver-opt", "k=v", "back", "web"]


def test_network_create():
    request = NetworkRequest(
        name="shop_front",
        driver="bridge",
        driver_opts={"com.docker.network.bridge.name": "br-shop"},
        ipam={"Driver": "default", "Config": [{"Subnet": "172.30.0.0/16", "IPRange": "172.30.5.0/24", "Gateway": "172.30.0.1", "AuxiliaryAddresses": {"router": "172.30.0.2"}}], "Options": {"o": "v"}},
        labels={"dockwright.created-by": "dockwright"},
        internal=True,
        attachable=True,
        enable_ipv6=True,
    )
    argv = shlex.split(render_network_create(request))
    assert argv == [
        "docker", "network", "create", "--driver", "bridge", "--opt", "com.docker.network.bridge.name=br-shop",
        "--ipam-driver", "default", "--subnet", "172.30.0.0/16", "--ip-range", "172.30.5.0/24", "--gateway", "172.30.0.1",
        "--aux-address", "router=172.30.0.2", "--ipam-opt", "o=v", "--internal", "--attachable", "--ipv6",
        "--label", "dockwright.created-by=dockwright", "shop_front",
    ]


def test_volume_create():
    request = VolumeRequest(name="shop_data", driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs"}, labels={"a": "b", "api_key": "k"})
    argv = shlex.split(render_volume_create(request))
    assert argv == ["docker", "volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--label", "a=b", "--label", "api_key=***", "shop_data"]


def test_render_command_quotes():
    assert render_command("docker", "pull", "localhost:5001/demo/web:1") == "docker pull localhost:5001/demo/web:1"
    assert shlex.split(render_command("docker", "exec", "web", "sh", "-c", "echo 'hi there'")) == ["docker", "exec", "web", "sh", "-c", "echo 'hi there'"]


def test_render_command_masks_credentials():
    rendered = render_command("docker", "login", "--username", "user", "--password", "pass", "localhost:5001")
    assert rendered == "docker login --username user --password '***' localhost:5001"
    assert "pass " not in render_command("docker", "login", "--password=pass", "r")


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6))
def test_render_command_round_trips(argv):
    """Any argument vector without credential flags parses back unchanged."""
    # A flag with a secret name (--password, --registry-token) masks its value on purpose.
    args = [argument for argument in argv if not (argument.startswith("-") and is_secret_name(argument))]
    if args:
        assert shlex.split(render_command(*args)) == args


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True),
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
        max_size=5,
    )
)
def test_create_environment_round_trips(environment):
    """Every environment value parses back from the rendering, or is masked when secret."""
    argv = shlex.split(render_create(plan_service({"image": "x", "environment": environment}, name="app", image=None)))
    rendered = flag_values(argv, "-e")
    assert len(rendered) == len(environment)
    for (name, value), entry in zip(environment.items(), rendered, strict=True):
        secret = any(marker in name for marker in ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"))
        assert entry == (f"{name}=***" if secret else f"{name}={value}")
