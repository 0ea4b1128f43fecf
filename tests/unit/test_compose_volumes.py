"""Compose `volumes`, `tmpfs` and `devices`, converted to Binds, Mounts, Volumes and Tmpfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.errors import SpecError
from controller.specs.compose import plan_service

BASE = Path("/srv/project")


def plan_with(spec, **kwargs):
    kwargs.setdefault("base_dir", BASE)
    return plan_service({"image": "x", **spec}, name="app", image=None, **kwargs)


@pytest.mark.parametrize(
    ("entry", "bind"),
    [
        ("data:/data", "data:/data"),
        ("data:/data:ro", "data:/data:ro"),
        ("data:/data:nocopy", "data:/data:nocopy"),
        ("./conf:/etc/app", "/srv/project/conf:/etc/app"),
        ("../shared:/shared:ro,z", "/srv/shared:/shared:ro,z"),
        ("/var/log:/logs:rw,rshared", "/var/log:/logs:rw,rshared"),
        ("/abs/path/:/mnt:cached", "/abs/path:/mnt:cached"),
        ("~/cache:/cache", os.path.expanduser("~/cache") + ":/cache"),
    ],
)
def test_short_binds(entry, bind):
    assert plan_with({"volumes": [entry]}).body["HostConfig"]["Binds"] == [bind]


def test_short_anonymous():
    body = plan_with({"volumes": ["/cache", "/tmp/work"]}).body
    assert body["Volumes"] == {"/cache": {}, "/tmp/work": {}}
    assert "Binds" not in body["HostConfig"]


def test_named_volume_request_inline():
    plan = plan_with({"volumes": ["data:/data", "data:/copy:ro", "other:/other"]})
    assert [volume.name for volume in plan.volumes] == ["data", "other"]
    assert plan.volumes[0].labels == {"dockwright.created-by": "dockwright"}
    assert not plan.volumes[0].external


def test_bind_creates_no_volume_request():
    assert plan_with({"volumes": ["/host:/c", "./rel:/r"]}).volumes == ()


def test_long_volume():
    plan = plan_with({"volumes": [{"type": "volume", "source": "data", "target": "/data", "read_only": True, "volume": {"nocopy": True}}]})
    assert plan.body["HostConfig"]["Mounts"] == [
        {"Type": "volume", "Target": "/data", "Source": "data", "VolumeOptions": {"NoCopy": True}, "ReadOnly": True}
    ]
    assert [volume.name for volume in plan.volumes] == ["data"]


def test_long_anonymous_volume():
    plan = plan_with({"volumes": [{"type": "volume", "target": "/scratch"}]})
    assert plan.body["HostConfig"]["Mounts"] == [{"Type": "volume", "Target": "/scratch"}]
    assert plan.volumes == ()


def test_long_bind_mount():
    mounts = plan_with({"volumes": [{"type": "bind", "source": "./site", "target": "/www", "read_only": "true", "bind": {"propagation": "rslave"}}]}).body["HostConfig"]["Mounts"]
    assert mounts == [{"Type": "bind", "Target": "/www", "Source": "/srv/project/site", "BindOptions": {"Propagation": "rslave"}, "ReadOnly": True}]


def test_long_bind_create_host_path_uses_binds():
    host = plan_with({"volumes": [{"type": "bind", "source": "/data/new", "target": "/new", "read_only": True, "bind": {"create_host_path": True, "selinux": "z"}}]}).body["HostConfig"]
    assert host["Binds"] == ["/data/new:/new:ro,z"]
    assert "Mounts" not in host


def test_long_tmpfs():
    mounts = plan_with({"volumes": [{"type": "tmpfs", "target": "/run", "tmpfs": {"size": "64m", "mode": "1777"}}]}).body["HostConfig"]["Mounts"]
    assert mounts == [{"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 64 * 1024**2, "Mode": 0o1777}}]


def test_long_tmpfs_integer_mode():
    mounts = plan_with({"volumes": [{"type": "tmpfs", "target": "/run", "tmpfs": {"mode": 0o700}}]}).body["HostConfig"]["Mounts"]
    assert mounts[0]["TmpfsOptions"] == {"Mode": 0o700}


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ("data", "spec.volumes[1]", "container path 'data' must be absolute"),
        ("data:relative", "spec.volumes[1]", "must be absolute"),
        ("a:/b:c:d", "spec.volumes[1]", "invalid volume"),
        ("data::/x", "spec.volumes[1]", "invalid volume"),
        ("", "spec.volumes[1]", "invalid volume"),
        ("data:/data:bogus", "spec.volumes[1]", "invalid volume mode 'bogus'"),
        ("data:/data:ro,rw", "spec.volumes[1]", "exclude each other"),
        ("/host:/c:nocopy", "spec.volumes[1]", "nocopy applies to named volumes"),
        ("bad name!:/x", "spec.volumes[1]", "invalid volume name"),
        ("other:/first", "spec.volumes[1]", "duplicate mount target /first"),
        (5, "spec.volumes[1]", "invalid volume 5"),
        ({"target": "/x"}, "spec.volumes[1].type", "expected volume, bind or tmpfs"),
        ({"type": "npipe", "target": "/x"}, "spec.volumes[1].type", "expected volume, bind or tmpfs"),
        ({"type": "volume", "source": "d"}, "spec.volumes[1].target", "missing"),
        ({"type": "volume", "target": "rel"}, "spec.volumes[1].target", "must be absolute"),
        ({"type": "bind", "target": "/x"}, "spec.volumes[1].source", "missing"),
        ({"type": "tmpfs", "source": "s", "target": "/x"}, "spec.volumes[1].source", "has no source"),
        ({"type": "volume", "target": "/x", "bind": {}}, "spec.volumes[1].bind", "do not apply"),
        ({"type": "volume", "target": "/x", "volume": {"subpath": "a"}}, "spec.volumes[1].volume.subpath", "unsupported key"),
        ({"type": "bind", "source": "/a", "target": "/x", "bind": {"propagation": "weird"}}, "spec.volumes[1].bind.propagation", "invalid propagation"),
        ({"type": "bind", "source": "/a", "target": "/x", "bind": {"selinux": "q"}}, "spec.volumes[1].bind.selinux", "expected z or Z"),
        ({"type": "tmpfs", "target": "/x", "tmpfs": {"size": "huge"}}, "spec.volumes[1].tmpfs.size", "invalid size"),
        ({"type": "tmpfs", "target": "/x", "tmpfs": {"mode": "999"}}, "spec.volumes[1].tmpfs.mode", "octal"),
        ({"type": "volume", "target": "/x", "read_only": "maybe"}, "spec.volumes[1].read_only", "expected true or false"),
        ({"type": "volume", "target": "/x", "extra": 1}, "spec.volumes[1].extra", "unsupported key"),
    ],
)
def test_invalid_volume(entry, field, message):
    with pytest.raises(SpecError) as caught:
        plan_with({"volumes": ["other:/first", entry]})
    assert caught.value.field == field
    assert message in str(caught.value)


def test_volumes_must_be_list():
    with pytest.raises(SpecError) as caught:
        plan_with({"volumes": {"data": "/data"}})
    assert caught.value.field == "spec.volumes"


def test_relative_bind_needs_base_dir():
    with pytest.raises(SpecError) as caught:
        plan_with({"volumes": ["./conf:/conf"]}, base_dir=None)
    assert caught.value.field == "spec.volumes[0]"
    assert "use an absolute host path" in str(caught.value)


def test_duplicate_target_across_forms():
    with pytest.raises(SpecError) as caught:
        plan_with({"volumes": ["/data"], "tmpfs": ["/data/"]})
    assert caught.value.field == "spec.tmpfs[0]"
    assert "duplicate mount target" in str(caught.value)


def test_tmpfs_forms():
    assert plan_with({"tmpfs": "/run"}).body["HostConfig"]["Tmpfs"] == {"/run": ""}
    assert plan_with({"tmpfs": ["/run:size=64m,mode=1777", "/tmp"]}).body["HostConfig"]["Tmpfs"] == {"/run": "size=64m,mode=1777", "/tmp": ""}


@pytest.mark.parametrize(("value", "field"), [({"/run": ""}, "spec.tmpfs"), (["run"], "spec.tmpfs[0]"), ([5], "spec.tmpfs[0]")])
def test_invalid_tmpfs(value, field):
    with pytest.raises(SpecError) as caught:
        plan_with({"tmpfs": value})
    assert caught.value.field == field


def test_devices_forms():
    devices = plan_with(
        {"devices": ["/dev/fuse", "/dev/sda:/dev/xvda", "/dev/sdb:/dev/xvdb:r", "/dev/net/tun:rw", {"source": "/dev/kvm", "permissions": "rw"}]}
    ).body["HostConfig"]["Devices"]
    assert devices == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/sdb", "PathInContainer": "/dev/xvdb", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/net/tun", "PathInContainer": "/dev/net/tun", "CgroupPermissions": "rw"},
        {"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm", "CgroupPermissions": "rw"},
    ]


@pytest.mark.parametrize(
    ("entry", "field"),
    [("/dev/a:/dev/b:rwx", "spec.devices[0]"), ("/a:/b:r:x", "spec.devices[0]"), ("", "spec.devices[0]"), ({"target": "/x"}, "spec.devices[0].source"), (3, "spec.devices[0]")],
)
def test_invalid_devices(entry, field):
    with pytest.raises(SpecError) as caught:
        plan_with({"devices": [entry]})
    assert caught.value.field == field
