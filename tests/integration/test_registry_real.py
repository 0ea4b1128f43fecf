"""Registry client against the real local registries (distribution 2.8 on 127.0.0.1).

Images, manifest lists and indexes are written over the registry API by `RegistryWriter`
under the test's unique prefix, then read back with `RegistryClient.resolve`. The open
registry is localhost:5001, and localhost:5002 requires Basic authentication.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.clients.docker_config import load_credentials
from controller.clients.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Platform,
    RegistryClient,
)
from controller.errors import AuthenticationError, PermanentError
from controller.specs.reference import parse_reference
from tests.support.engine import Registry
from tests.support.registry_writer import PushedImage, RegistryWriter

pytestmark = pytest.mark.anyio

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


class RequestLog:
    """Records the client's on_request calls, to count requests per kind."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, registry: str, kind: str, status: int) -> None:
        self.calls.append((registry, kind, status))

    def statuses(self, kind: str) -> list[int]:
        return [status for _, call_kind, status in self.calls if call_kind == kind]


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


@pytest.fixture
def requests() -> RequestLog:
    return RequestLog()


def docker_config(tmp_path: Path, registry_key: str, username: str, password: str) -> Path:
    """Write a Docker config.json with one `auths` entry, as `docker login` stores it."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {registry_key: {"auth": encoded}}}), encoding="utf-8")
    return path


def client_for(config_path: Path | None, requests: RequestLog) -> RegistryClient:
    return RegistryClient(
        credentials_for=lambda registry: (
            load_credentials(config_path, registry) if config_path else None
        ),
        on_request=requests,
        timeout=10.0,
        max_retries=1,
    )


def two_platforms(
    writer: RegistryWriter, repository: str, *, oci: bool
) -> tuple[PushedImage, PushedImage]:
    amd = writer.push_image(repository, architecture="amd64", oci=oci)
    arm = writer.push_image(repository, architecture="arm64", variant="v8", oci=oci)
    return amd, arm


async def test_plain_manifest_digest_and_config(registry, unique_prefix, open_writer, requests):
    repository = f"{unique_prefix}/plain"
    pushed = open_writer.push_image(repository, tag="1")
    reference = parse_reference(f"{registry.open_address}/{repository}:1")

    async with client_for(None, requests) as client:
        head = await client.head_manifest(reference)
        head_count = len(requests.calls)
        image = await client.resolve(reference, platform=AMD64)

    assert head.digest == pushed.digest
    assert head.media_type == DOCKER_MANIFEST
    assert head.size == pushed.manifest.size
    assert head_count == 1
    assert image.digest == pushed.digest
    assert image.media_type == DOCKER_MANIFEST
    assert image.is_index is False
    assert image.platform_digest is None
    assert image.config_digest == pushed.config_digest
    # One GET for the manifest, and no blob request for a plain manifest.
    assert requests.statuses("manifest") == [200, 200]
    assert requests.statuses("blob") == []
    assert requests.statuses("token") == []


async def test_plain_oci_manifest(registry, unique_prefix, open_writer, requests):
    repository = f"{unique_prefix}/oci"
    pushed = open_writer.push_image(repository, tag="1", oci=True)
    reference = parse_reference(f"{registry.open_address}/{repository}:1")

    async with client_for(None, requests) as client:
        head = await client.head_manifest(reference)
        image = await client.resolve(reference, platform=AMD64)

    assert head.media_type == OCI_MANIFEST
    assert image.media_type == OCI_MANIFEST
    assert image.digest == pushed.digest
    assert image.config_digest == pushed.config_digest


async def test_default_tag_is_latest(registry, unique_prefix, open_writer, requests):
    repository = f"{unique_prefix}/app"
    pushed = open_writer.push_image(repository, tag="latest")
    reference = parse_reference(f"{registry.open_address}/{repository}")

    async with client_for(None, requests) as client:
        image = await client.resolve(reference, platform=AMD64)

    assert reference.tag == "latest"
    assert image.digest == pushed.digest


@pytest.mark.parametrize("oci", [True, False], ids=["oci-index", "docker-manifest-list"])
async def test_index_picks_amd64_skips_attestation(registry, unique_prefix, open_writer, requests, oci):
    repository = f"{unique_prefix}/multi"
    amd, arm = two_platforms(open_writer, repository, oci=oci)
    pushed_index = open_writer.push_index(repository, tag="1", images=[amd, arm], oci=oci)
    reference = parse_reference(f"{registry.open_address}/{repository}:1")

    async with client_for(None, requests) as client:
        head = await client.head_manifest(reference)
        on_amd = await client.resolve(reference, platform=AMD64)
        on_arm = await client.resolve(reference, platform=ARM64)

    expected_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
    assert head.digest == pushed_index.digest
    assert head.media_type == expected_type
    assert on_amd.digest == pushed_index.digest
    assert on_amd.media_type == expected_type
    assert on_amd.is_index is True
    assert on_amd.platform_digest == amd.digest
    assert on_amd.config_digest == amd.config_digest
    assert on_arm.platform_digest == arm.digest
    assert on_arm.config_digest == arm.config_digest
    assert on_amd.config_digest != on_arm.config_digest
    assert requests.statuses("manifest") == [200, 200, 200, 200, 200]
    assert requests.statuses("blob") == []


async def test_index_with_only_attestation_and_arm(registry, unique_prefix, open_writer, requests):
    """The attestation entry (the first image's) is never chosen, even when nothing else fits."""
    repository = f"{unique_prefix}/armonly"
    arm = open_writer.push_image(repository, architecture="arm64", variant="v8")
    open_writer.push_index(repository, tag="1", images=[arm])
    reference = parse_reference(f"{registry.open_address}/{repository}:1")

    async with client_for(None, requests) as client:
        with pytest.raises(PermanentError) as raised:
            await client.resolve(reference, platform=AMD64)

    message = str(raised.value)
    assert "no image for platform linux/amd64" in message
    assert "offers: linux/arm64/v8" in message
    assert "unknown" not in message


async def test_arm64_change_keeps_amd64_config(registry, unique_prefix, open_writer, requests):
    repository = f"{unique_prefix}/moving"
    reference = parse_reference(f"{registry.open_address}/{repository}:1")
    amd, arm = two_platforms(open_writer, repository, oci=True)
    first_index = open_writer.push_index(repository, tag="1", images=[amd, arm])

    async with client_for(None, requests) as client:
        before = await client.resolve(reference, platform=AMD64)

        new_arm = open_writer.push_image(repository, architecture="arm64", variant="v8", marker="2", oci=True)
        second_index = open_writer.push_index(repository, tag="1", images=[amd, new_arm])
        after_arm_change = await client.resolve(reference, platform=AMD64)

        new_amd = open_writer.push_image(repository, architecture="amd64", marker="2", oci=True)
        open_writer.push_index(repository, tag="1", images=[new_amd, new_arm])
        after_amd_change = await client.resolve(reference, platform=AMD64)

    assert before.digest == first_index.digest
    assert after_arm_change.digest == second_index.digest
    assert after_arm_change.digest != before.digest
    assert after_arm_change.config_digest == before.config_digest
    assert after_arm_change.platform_digest == before.platform_digest
    assert after_amd_change.config_digest == new_amd.config_digest
    assert after_amd_change.config_digest != before.config_digest


async def test_auth_registry_with_credentials(registry, unique_prefix, auth_writer, requests, tmp_path):
    repository = f"{unique_prefix}/private"
    amd, arm = two_platforms(auth_writer, repository, oci=True)
    pushed_index = auth_writer.push_index(repository, tag="1", images=[amd, arm])
    config = docker_config(tmp_path, f"https://{registry.auth_address}", registry.username, registry.password)
    reference = parse_reference(f"{registry.auth_address}/{repository}:1")

    async with client_for(config, requests) as client:
        image = await client.resolve(reference, platform=AMD64)
        head = await client.head_manifest(reference)

    assert image.digest == pushed_index.digest
    assert image.config_digest == amd.config_digest
    assert head.digest == pushed_index.digest
    # One challenge, then Basic credentials are sent with every request.
    assert requests.statuses("manifest") == [401, 200, 200, 200]


async def test_auth_registry_wrong_credentials(registry, unique_prefix, auth_writer, requests, tmp_path):
    repository = f"{unique_prefix}/private"
    auth_writer.push_image(repository, tag="1")
    config = docker_config(tmp_path, registry.auth_address, registry.username, "not-the-password")
    reference = parse_reference(f"{registry.auth_address}/{repository}:1")

    async with client_for(config, requests) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.resolve(reference, platform=AMD64)

    message = str(raised.value)
    assert f"registry {registry.auth_address} rejected the credentials" in message
    assert "docker config file" in message
    assert "not-the-password" not in message
    assert requests.statuses("manifest") == [401, 401]


async def test_auth_registry_without_credentials(registry, unique_prefix, auth_writer, requests, tmp_path):
    repository = f"{unique_prefix}/private"
    auth_writer.push_image(repository, tag="1")
    # A config with credentials for the other registry only.
    config = docker_config(tmp_path, registry.open_address, registry.username, registry.password)
    reference = parse_reference(f"{registry.auth_address}/{repository}:1")

    async with client_for(config, requests) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.head_manifest(reference)

    assert "has no credentials for it" in str(raised.value)
    assert requests.statuses("manifest") == [401]


async def test_unknown_tag_is_permanent(registry, unique_prefix, open_writer, requests):
    repository = f"{unique_prefix}/app"
    open_writer.push_image(repository, tag="1")
    reference = parse_reference(f"{registry.open_address}/{repository}:does-not-exist")

    async with client_for(None, requests) as client:
        with pytest.raises(PermanentError) as raised:
            await client.resolve(reference, platform=AMD64)

    message = str(raised.value)
    assert message.startswith("manifest unknown")
    assert f"{registry.open_address}/{repository}:does-not-exist" in message
    assert requests.statuses("manifest") == [404]


async def test_unknown_repository_is_permanent(registry, unique_prefix, requests):
    reference = parse_reference(f"{registry.open_address}/{unique_prefix}/never-pushed:1")

    async with client_for(None, requests) as client:
        with pytest.raises(PermanentError) as raised:
            await client.head_manifest(reference)

    assert str(raised.value).startswith("manifest unknown")


async def test_pulled_image_id_is_config_digest(registry, unique_prefix, open_writer, requests, docker_client):
    """What resolve reports as config digest is the image id the engine gives the pulled image."""
    repository = f"{unique_prefix}/runnable"
    base = registry.base_image.split("/", 1)[1]
    amd = open_writer.push_image(repository, architecture="amd64", base=base, oci=True)
    arm = open_writer.push_image(repository, architecture="arm64", variant="v8", base=base, oci=True)
    pushed_index = open_writer.push_index(repository, tag="1", images=[amd, arm])
    reference = parse_reference(f"{registry.open_address}/{repository}:1")

    async with client_for(None, requests) as client:
        remote = await client.resolve(reference, platform=AMD64)

    repository_name, tag = reference.pull_name()
    pulled = docker_client.images.pull(repository_name, tag=tag)

    assert pulled.id == remote.config_digest
    assert f"{repository_name}@{pushed_index.digest}" in pulled.attrs["RepoDigests"]
