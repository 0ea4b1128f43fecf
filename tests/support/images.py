"""Build test image variants from an in-memory context, FROM the shared busybox base image.

Tests use `build_image` to make images that differ from the base in ENV, CMD, ENTRYPOINT,
HEALTHCHECK, VOLUME or labels, tagged under the test's prefix so the cleanup fixture removes
them, e.g. `localhost:5001/<prefix>/app:1`.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterable, Mapping
from typing import Any

import docker

from tests.support.engine import Registry

BASE_IMAGE = Registry().base_image


class ImageError(Exception):
    """A build or push that the engine reported as failed."""


def build_image(
    client: docker.DockerClient,
    tag: str,
    dockerfile: str,
    files: Mapping[str, bytes | str] | None = None,
    *,
    push: bool = False,
) -> str:
    """Build `dockerfile` with `files` as its context, tag it `tag` and return the image id.

    When the Dockerfile has no FROM line, `FROM` the base image is put in front of it, so a
    variant can be written as just the lines that differ (`ENV MODE=b\\nCMD ["sleep", "60"]`).
    File names are paths inside the context, usable in COPY. With `push=True` the tag is
    pushed, with the test credentials when it names the auth registry.

    Raises `ImageError` with the engine's message when the build or the push fails.
    """
    if not _has_from_line(dockerfile):
        dockerfile = f"FROM {BASE_IMAGE}\n{dockerfile}"
    context = _context_tar({"Dockerfile": dockerfile, **(files or {})})

    stream = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        decode=True,
    )
    build_output = _consume(stream, action=f"build of {tag}")
    image_id = next((item["aux"]["ID"] for item in build_output if "ID" in item.get("aux", {})), None)
    if image_id is None:
        image_id = client.images.get(tag).id

    if push:
        push_image(client, tag)
    return image_id


def push_image(client: docker.DockerClient, tag: str) -> None:
    """Push `tag`, with the test credentials when it names the auth registry.

    Raises `ImageError` on any error in the push stream, because the engine reports a failed
    push there and not through the HTTP status.
    """
    registry = Registry()
    repository, _, version = tag.rpartition(":")
    if "/" in version:
        # The colon was the registry's port, so the tag has no version part.
        repository, version = tag, "latest"

    auth_config = registry.auth_config if repository.startswith(registry.auth_address + "/") else None
    stream = client.api.push(repository, tag=version, stream=True, decode=True, auth_config=auth_config)
    _consume(stream, action=f"push of {tag}")


def wait_for_health(client: docker.DockerClient, container_id: str, *, timeout: float = 30) -> str:
    """Wait until the container's health status is `healthy` or `unhealthy`, and return it.

    Raises `TimeoutError` naming the container and the last status when neither is reached in
    `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        state = client.api.inspect_container(container_id)["State"]
        status = state.get("Health", {}).get("Status", "none")
        if status in ("healthy", "unhealthy"):
            return status
        time.sleep(0.2)
    raise TimeoutError(f"container {container_id} was still {status!r} after {timeout} s, expected healthy")


def _has_from_line(dockerfile: str) -> bool:
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            return True
    return False


def _context_tar(files: Mapping[str, bytes | str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _consume(stream: Iterable[dict[str, Any]], *, action: str) -> list[dict[str, Any]]:
    """Read a build or push stream to its end and raise `ImageError` on its first error."""
    items = []
    for item in stream:
        items.append(item)
        error = item.get("error") or item.get("errorDetail", {}).get("message")
        if error:
            raise ImageError(f"{action} failed: {error.strip()}")
    return items
