"""The update_image operation end to end: `dockwright run` as a subprocess, rows written with
plain SQL, images written straight to the local registries by `RegistryWriter` and pulled by
the real engine.

The daemon logs every registry request of an operation as a `registry.request` row with its
kind (manifest, token, blob) and every Docker call with its name, so the tests count what a
check cost from the operation log.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon, run_cli
from tests.support.engine import Registry
from tests.support.images import build_image
from tests.support.registry_writer import PushedImage, RegistryWriter
from tests.support.network import free_port

BASE = "dockwright-test/busybox:1"  # the shared image in both registries, as a writer base
RECREATE_EXISTS = importlib.util.find_spec("controller.operations.recreate") is not None


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def open_writer(registry: Registry) -> Iterator[RegistryWriter]:
    with RegistryWriter(registry.url(registry.open_address)) as writer:
        yield writer
        writer.delete_pushed()


@pytest.fixture
def auth_writer(registry: Registry) -> Iterator[RegistryWriter]:
    writer = RegistryWriter(
        registry.url(registry.auth_address), username=registry.username, password=registry.password
    )
    with writer:
        yield writer
        writer.delete_pushed()


def log_details(daemon: Daemon, op_id: int) -> list[dict[str, Any]]:
    return [json.loads(row["details"]) for row in daemon.table.logs(op_id) if row["details"]]


def registry_requests(daemon: Daemon, op_id: int, kind: str) -> list[int]:
    """Return the HTTP statuses of the operation's registry requests of one kind."""
    return [
        details["status"]
        for details in log_details(daemon, op_id)
        if "kind" in details and "registry" in details and details["kind"] == kind
    ]


def docker_calls(daemon: Daemon, op_id: int) -> list[str]:
    return [details["call"] for details in log_details(daemon, op_id) if "call" in details]


def run_update(daemon: Daemon, image: str, *, timeout: float = 60.0, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Insert an update_image row, wait for it to end and return the row and its result."""
    columns: dict[str, Any] = {"type": "update_image", "image": image}
    if options:
        columns["options"] = options
    op_id = daemon.table.insert(**columns)
    row = daemon.table.wait(op_id, timeout=timeout)
    return row, daemon.table.result(op_id)


def write_docker_config(path: Path, registry: str, username: str, password: str) -> Path:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": encoded}}}), encoding="utf-8")
    return path


def two_platform_index(writer: RegistryWriter, repository: str, *, amd_marker: str, arm_marker: str) -> tuple[PushedImage, PushedImage]:
    amd = writer.push_image(repository, architecture="amd64", marker=amd_marker, oci=True)
    arm = writer.push_image(repository, architecture="arm64", variant="v8", marker=arm_marker, oci=True)
    writer.push_index(repository, tag="1", images=[amd, arm], oci=True, attestation=True)
    return amd, arm


# ---------------------------------------------------------------------------------------------
# Checks


def test_registry_port_default_tag(daemon, registry, docker_client, unique_prefix, open_writer):
    """`HOST:PORT/team/app` is tag latest on that registry, and `:1.2` is tag 1.2."""
    repository = f"{unique_prefix}/app"
    latest = open_writer.push_image(repository, tag="latest", marker="latest")
    tagged = open_writer.push_image(repository, tag="1.2", marker="1.2")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="latest")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1.2")

    row, result = run_update(daemon, f"{registry.open_address}/{repository}")
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["reference"] == f"{registry.open_address}/{repository}:latest"
    assert result["status"] == "up_to_date"
    assert result["remote_digest"] == latest.digest
    assert result["old_image_id"] == latest.config_digest
    assert result["new_image_id"] == latest.config_digest
    assert "up to date" in row["message"]

    row, result = run_update(daemon, f"{registry.open_address}/{repository}:1.2")
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["reference"] == f"{registry.open_address}/{repository}:1.2"
    assert result["remote_digest"] == tagged.digest
    assert result["status"] == "up_to_date"


def test_up_to_date_costs_one_manifest_request(daemon, registry, docker_client, unique_prefix, open_writer):
    """An up-to-date check makes one manifest request, no blob request and no pull."""
    repository = f"{unique_prefix}/app"
    open_writer.push_image(repository, tag="1")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")

    row, result = run_update(daemon, f"{registry.open_address}/{repository}:1")
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "up_to_date"
    assert registry_requests(daemon, row["id"], "manifest") == [200]
    assert registry_requests(daemon, row["id"], "blob") == []
    assert "pull" not in docker_calls(daemon, row["id"])


def test_local_image_makes_no_request(daemon, registry, docker_client, unique_prefix):
    """an image built on the host is `local`, and a start from it still works."""
    image = f"{registry.open_address}/{unique_prefix}/built:1"
    image_id = build_image(docker_client, image, 'LABEL built.here="yes"\n')

    row, result = run_update(daemon, image)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "local"
    assert result["old_image_id"] == image_id
    assert result["remote_digest"] is None
    assert registry_requests(daemon, row["id"], "manifest") == []
    assert "pull" not in docker_calls(daemon, row["id"])

    name = f"{unique_prefix}-built"
    start_id = daemon.table.insert(type="start", container=name, image=image, spec={"command": ["sleep", "60"]})
    start = daemon.table.wait(start_id, timeout=60)
    assert start["status"] == "completed", start
    assert docker_client.api.inspect_container(name)["Image"] == image_id


def test_pinned_reference_makes_no_request(daemon, registry, unique_prefix):
    digest = "sha256:" + "a" * 64
    image = f"{registry.open_address}/{unique_prefix}/app@{digest}"

    row, result = run_update(daemon, image)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "pinned"
    assert result["remote_digest"] == digest
    assert registry_requests(daemon, row["id"], "manifest") == []
    assert "pinned" in row["message"]


def test_invalid_reference_names_column(daemon, registry):
    row, _ = run_update(daemon, f"{registry.open_address}/Team/App:1")
    assert row["status"] == "failed", row
    assert row["error"].startswith("image: invalid image reference")
    assert "Team/App" in row["error"]


def test_platform_index_compares_own_entry(daemon, registry, docker_client, unique_prefix, open_writer):
    """a changed arm64 entry leaves amd64 up to date; a changed amd64 entry is an update."""
    repository = f"{unique_prefix}/multi"
    reference = f"{registry.open_address}/{repository}:1"
    amd, _ = two_platform_index(open_writer, repository, amd_marker="a1", arm_marker="r1")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")

    two_platform_index(open_writer, repository, amd_marker="a1", arm_marker="r2")
    row, result = run_update(daemon, reference)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "up_to_date"
    assert result["old_image_id"] == amd.config_digest
    assert registry_requests(daemon, row["id"], "blob") == []
    assert "pull" not in docker_calls(daemon, row["id"])

    new_amd, _ = two_platform_index(open_writer, repository, amd_marker="a2", arm_marker="r2")
    row, result = run_update(daemon, reference)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "updated"
    assert result["old_image_id"] == amd.config_digest
    assert result["new_image_id"] == new_amd.config_digest
    assert result["platform_digest"] == new_amd.digest
    assert docker_client.api.inspect_image(reference)["Id"] == new_amd.config_digest


def test_oci_index_skips_attestation(daemon, registry, docker_client, unique_prefix, open_writer):
    """an OCI index with the attestation entry first still resolves to the amd64 image."""
    repository = f"{unique_prefix}/oci"
    reference = f"{registry.open_address}/{repository}:1"
    amd, _ = two_platform_index(open_writer, repository, amd_marker="a1", arm_marker="r1")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")

    # The same amd64 image under an index that lists the attestation entry first.
    attestation = open_writer.push_attestation(repository, subject=amd)
    entries = [
        {
            **attestation.as_dict(),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": amd.digest,
            },
        },
        {**amd.manifest.as_dict(), "platform": amd.platform},
    ]
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}).encode()
    index = open_writer.push_manifest(repository, "1", body, "application/vnd.oci.image.index.v1+json")

    row, result = run_update(daemon, reference)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "up_to_date"
    assert result["remote_digest"] == index.digest
    assert registry_requests(daemon, row["id"], "blob") == []
    assert "pull" not in docker_calls(daemon, row["id"])


def test_newer_image_is_pulled(daemon, registry, docker_client, unique_prefix, open_writer):
    """A new image under the same tag is pulled, verified and reported with both ids."""
    repository = f"{unique_prefix}/app"
    reference = f"{registry.open_address}/{repository}:1"
    old = open_writer.push_image(repository, tag="1", marker="old", base=BASE)
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")
    new = open_writer.push_image(repository, tag="1", marker="new", base=BASE)

    row, result = run_update(daemon, reference)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert row["progress"] == 100
    assert result["status"] == "updated"
    assert result["old_image_id"] == old.config_digest
    assert result["new_image_id"] == new.config_digest
    assert result["remote_digest"] == new.digest
    assert "updated" in row["message"]
    assert docker_calls(daemon, row["id"]).count("pull") == 1

    image = docker_client.api.inspect_image(reference)
    assert image["Id"] == new.config_digest
    assert f"{registry.open_address}/{repository}@{new.digest}" in image["RepoDigests"]

    # The next check finds nothing new.
    row, result = run_update(daemon, reference)
    assert result["status"] == "up_to_date"


def test_recreate_children_for_users(daemon, registry, docker_client, unique_prefix, open_writer):
    """With recreate, each container of the reference gets one child recreate row."""
    repository = f"{unique_prefix}/app"
    bare = f"{registry.open_address}/{repository}"
    open_writer.push_image(repository, tag="latest", marker="old", base=BASE)
    old_id = docker_client.api.inspect_image(docker_client.images.pull(bare, tag="latest").id)["Id"]

    running = docker_client.containers.run(bare, ["sleep", "300"], name=f"{unique_prefix}-running", detach=True)
    stopped = docker_client.containers.create(f"{bare}:latest", ["sleep", "300"], name=f"{unique_prefix}-stopped")
    by_id = docker_client.containers.create(old_id, ["sleep", "300"], name=f"{unique_prefix}-byid")
    other = docker_client.containers.create(registry.base_image, ["sleep", "300"], name=f"{unique_prefix}-other")
    open_writer.push_image(repository, tag="latest", marker="new", base=BASE)

    row, result = run_update(daemon, f"{bare}:latest", recreate=True)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "updated"
    children = {child["container"]: child["id"] for child in result["children"]}
    assert sorted(children) == sorted([running.name, stopped.name, by_id.name])
    assert other.name not in children

    for name, child_id in children.items():
        child = daemon.table.row(child_id)
        assert child["type"] == "recreate"
        assert child["container"] == name
        assert child["parent_id"] == row["id"]
        assert child["host"] == row["host"]
    assert daemon.table.row(children[by_id.name])["image"] == f"{bare}:latest"
    assert daemon.table.row(children[running.name])["image"] is None

    if RECREATE_EXISTS:
        for child_id in children.values():
            child = daemon.table.wait(child_id, timeout=90)
            assert child["status"] == "completed", child
        for name in children:
            assert docker_client.api.inspect_container(name)["Image"] == result["new_image_id"]


def test_auth_registry_with_config(make_daemon, registry, docker_client, unique_prefix, auth_writer, tmp_path):
    """right credentials check and pull; wrong ones fail with an authentication error."""
    config = write_docker_config(tmp_path / "config.json", registry.auth_address, registry.username, registry.password)
    daemon = make_daemon(dockwright_docker_config=str(config)).start()
    repository = f"{unique_prefix}/private"
    reference = f"{registry.auth_address}/{repository}:1"
    auth_writer.push_image(repository, tag="1", marker="old")
    docker_client.api.pull(f"{registry.auth_address}/{repository}", tag="1", auth_config=registry.auth_config)

    row, result = run_update(daemon, reference)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "up_to_date"

    new = auth_writer.push_image(repository, tag="1", marker="new")
    row, result = run_update(daemon, reference)
    assert row["status"] == "completed", (row["error"], row["message"])
    assert result["status"] == "updated"
    assert result["new_image_id"] == new.config_digest

    write_docker_config(config, registry.auth_address, registry.username, "wrong-password")
    row, result = run_update(daemon, reference)
    assert row["status"] == "failed", row
    assert "rejected the credentials" in row["error"]
    assert "up_to_date" not in json.dumps(result)
    assert "wrong-password" not in daemon.log_text()
    assert registry.password not in daemon.log_text()


def test_unreachable_registry_retries_then_fails(daemon, unique_prefix):
    port = free_port()
    row, result = run_update(daemon, f"127.0.0.1:{port}/{unique_prefix}/app:1", max_attempts=2)
    assert row["status"] == "failed", row
    assert row["error"].startswith("gave up after 2 tries")
    assert f"registry 127.0.0.1:{port} could not be reached" in row["error"]
    assert result["tries"] == 2
    retries = [log for log in daemon.table.logs(row["id"]) if "retrying in" in log["message"]]
    assert len(retries) == 1


def test_cli_submit_update_image(daemon, registry, docker_client, unique_prefix, open_writer):
    repository = f"{unique_prefix}/app"
    open_writer.push_image(repository, tag="1")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")
    reference = f"{registry.open_address}/{repository}:1"

    completed = run_cli("submit", "update-image", reference, "--recreate", "--wait", env=daemon.environment())
    assert completed.returncode == 0, completed.stderr
    assert "completed" in completed.stderr
    assert "up to date" in completed.stderr

    op_id = int(completed.stdout.split()[2])
    row = daemon.table.row(op_id)
    assert row["type"] == "update_image"
    assert row["image"] == reference
    assert json.loads(row["options"]) == {"recreate": True}
    assert daemon.table.result(op_id)["children"] == []
