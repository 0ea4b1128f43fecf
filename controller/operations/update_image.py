"""The `update_image` operation: pull an image only when its registry has a newer one.

Steps:
- check: parse the reference, inspect the local image and ask the registry for the digest;
- pull: only when newer, through `controller.operations.pulling`;
- verify: the pulled image is the one the registry described;
- children: with `options.recreate`, one `recreate` row per container that uses the
  reference and does not run its current image.

The comparison, from cheapest to dearest:
- a reference pinned by digest cannot change: status `pinned`, no registry request;
- a local image with no RepoDigest for the reference's repository was built or tagged on
  this host and never pulled from the registry: status `local`, no registry request;
- a manifest HEAD returns the digest the tag points to; when a local RepoDigest of the
  repository equals it, the image is up to date after one manifest request;
- otherwise the manifest is fetched (for an index, also the entry for the engine's
  platform, skipping attestation entries) and its config digest is compared with the local
  image id, so an index that changed only for other platforms is still up to date.
No blob is ever downloaded for the check. A registry that rejects the credentials fails the
operation, and is never taken for "up to date".
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path
from typing import Any

from controller.clients.docker import DockerClient, DockerNotFound
from controller.clients.docker_config import load_credentials
from controller.clients.registry import Platform, RegistryClient, RemoteImage
from controller.errors import PermanentError, SpecError, TransientError
from controller.operations.context import OperationContext
from controller.operations.pulling import pull_image
from controller.specs.cli_render import render_command
from controller.specs.reference import Reference, parse_reference

UPDATED = "updated"
UP_TO_DATE = "up_to_date"
LOCAL = "local"
PINNED = "pinned"

# Shortest image id prefix that is taken for an id in a container's Config.Image.
MIN_ID_PREFIX = 12
_HEX_RE = re.compile(r"[a-f0-9]+")

# The engine's platform never changes while it runs, so it is asked once per Docker client.
_ENGINE_PLATFORMS: weakref.WeakKeyDictionary[DockerClient, Platform] = weakref.WeakKeyDictionary()


async def run(ctx: OperationContext) -> dict[str, Any]:
    await ctx.begin_step("check", f"Checking {ctx.request.image} for a newer image", progress=1)
    reference = parse_reference(ctx.request.image or "", field="image")
    shown = reference.familiar()
    result: dict[str, Any] = {"reference": shown}

    if reference.digest is not None:
        return await _pinned(ctx, reference, result)

    local = await ctx.docker.inspect_image(shown)
    if local is not None and not _repo_digests(local, reference):
        ctx.log(
            "INFO",
            f"Image {shown} ({local['Id'][:19]}) has no registry digest for {reference.name}: "
            "it was built or tagged on this host, so there is nothing to compare",
            event="image.local",
            image_id=local["Id"],
        )
        return {
            **result,
            "status": LOCAL,
            "old_image_id": local["Id"],
            "new_image_id": local["Id"],
            "remote_digest": None,
            "summary": f"{shown} is a local image with no registry digest; not checked",
        }

    # A retry after the pull finds the new image locally; the journal keeps the old one.
    old_image_id = ctx.journal.get("old_image_id", local["Id"] if local else None)
    remote = await _check_registry(ctx, reference, local)
    result.update(old_image_id=old_image_id, remote_digest=remote.digest)

    if remote.up_to_date:
        current_image_id = local["Id"] if local else None
        children = await _recreate_children(
            ctx, reference, old_image_id=old_image_id, current_image_id=current_image_id
        )
        if ctx.journal.get("pull_started"):
            # An earlier try of this operation pulled the image and stopped before finishing.
            status, summary = UPDATED, f"{shown} updated to {remote.digest}"
        else:
            status, summary = UP_TO_DATE, f"{shown} is up to date ({remote.digest})"
        return {
            **result,
            "status": status,
            "new_image_id": current_image_id,
            **children,
            "summary": summary,
        }

    new_image = await _pull_newer(ctx, reference, remote, old_image_id=old_image_id)
    children = await _recreate_children(
        ctx, reference, old_image_id=old_image_id, current_image_id=new_image["Id"]
    )
    return {
        **result,
        "status": UPDATED,
        "new_image_id": new_image["Id"],
        **remote.details(),
        **children,
        "summary": f"{shown} updated to {remote.digest} (image {new_image['Id'][:19]})",
    }


# ---------------------------------------------------------------------------------------------
# Check


class RemoteCheck:
    """The registry's digest for a reference, and whether the local image matches it."""

    def __init__(self, *, digest: str, up_to_date: bool, image: RemoteImage | None) -> None:
        self.digest = digest
        self.up_to_date = up_to_date
        self.image = image

    def details(self) -> dict[str, Any]:
        if self.image is None:
            return {}
        return {
            "media_type": self.image.media_type,
            "platform_digest": self.image.platform_digest,
            "config_digest": self.image.config_digest,
        }


async def _pinned(ctx: OperationContext, reference: Reference, result: dict[str, Any]) -> dict[str, Any]:
    """Report a digest-pinned reference, which cannot change, without any registry request."""
    shown = reference.familiar()
    local = await ctx.docker.inspect_image(shown)
    image_id = local["Id"] if local else None
    # NOTE: a pinned image that is not present is not pulled either; a start or recreate pulls it.
    ctx.log(
        "INFO",
        f"{shown} is pinned by digest, so it cannot change; "
        + (f"local image {image_id[:19]}" if image_id else "it is not present locally"),
        event="image.pinned",
        image_id=image_id,
    )
    return {
        **result,
        "status": PINNED,
        "old_image_id": image_id,
        "new_image_id": image_id,
        "remote_digest": reference.digest,
        "summary": f"{shown} is pinned by digest; not checked",
    }


async def _check_registry(
    ctx: OperationContext, reference: Reference, local: dict[str, Any] | None
) -> RemoteCheck:
    """Ask the registry for the reference's digest and compare it with the local image."""
    shown = reference.familiar()
    local_digests = _repo_digests(local, reference) if local else set()

    async with _RegistrySession(ctx) as registry:
        head = await registry.head_manifest(reference)
        ctx.log(
            "INFO",
            f"Registry {reference.registry} has {shown} at {head.digest}",
            event="registry.manifest",
            digest=head.digest,
            media_type=head.media_type,
            local_digests=sorted(local_digests),
        )
        if head.digest in local_digests:
            return RemoteCheck(digest=head.digest, up_to_date=True, image=None)

        platform = await engine_platform(ctx)
        image = await registry.resolve(reference, platform=platform)

    if local is None:
        ctx.log("INFO", f"Image {shown} is not present locally; pulling {image.digest}")
        return RemoteCheck(digest=image.digest, up_to_date=False, image=image)

    same_image = image.config_digest == local["Id"] or image.platform_digest in local_digests
    if same_image:
        ctx.log(
            "INFO",
            f"The {platform} image of {shown} is unchanged (config {image.config_digest}); "
            f"the manifest {image.digest} differs only in other entries",
            event="image.up_to_date",
            platform=str(platform),
            config_digest=image.config_digest,
        )
    else:
        ctx.log(
            "INFO",
            f"Registry {reference.registry} has a newer {platform} image of {shown}: config "
            f"{image.config_digest}, local image {local['Id']}",
            event="image.newer",
            platform=str(platform),
            config_digest=image.config_digest,
            local_image_id=local["Id"],
        )
    return RemoteCheck(digest=image.digest, up_to_date=same_image, image=image)


async def engine_platform(ctx: OperationContext) -> Platform:
    """Return the engine's OS and architecture, from `docker version`, asked once per client.

    NOTE: engine 20.10 reports no CPU variant, so the variant is the default that
    containerd's matcher assumes (v7 for arm). An ARMv6 host would be given v7 entries.
    """
    known = _ENGINE_PLATFORMS.get(ctx.docker)
    if known is not None:
        return known

    version = await ctx.docker.call("version", cli=render_command("docker", "version"))
    os_name = version.get("Os")
    architecture = version.get("Arch")
    if not os_name or not architecture:
        raise PermanentError(
            f"the Docker engine reported no platform (Os {os_name!r}, Arch {architecture!r}) in "
            "`docker version`, so the index entry to compare cannot be chosen"
        )
    platform = Platform(os_name, architecture)
    _ENGINE_PLATFORMS[ctx.docker] = platform
    return platform


class _RegistrySession:
    """Use the controller's shared registry client, or a private one closed afterwards."""

    def __init__(self, ctx: OperationContext) -> None:
        self._shared: RegistryClient | None = ctx.services.registry
        self._own: RegistryClient | None = None
        self._ctx = ctx

    async def __aenter__(self) -> RegistryClient:
        if self._shared is not None:
            return self._shared
        config_path = Path(self._ctx.settings.docker_config) if self._ctx.settings.docker_config else None
        self._own = RegistryClient(credentials_for=lambda registry: load_credentials(config_path, registry))
        return self._own

    async def __aexit__(self, *exc_info: object) -> None:
        if self._own is not None:
            await self._own.aclose()


# ---------------------------------------------------------------------------------------------
# Pull and verify


async def _pull_newer(
    ctx: OperationContext, reference: Reference, remote: RemoteCheck, *, old_image_id: str | None
) -> dict[str, Any]:
    """Pull the reference and check that the engine now has the image the registry described."""
    shown = reference.familiar()
    await ctx.save_journal(old_image_id=old_image_id, pull_started=True, remote_digest=remote.digest)

    await ctx.begin_step("pull", f"Pulling the newer image {shown}", progress=10)
    image = await pull_image(ctx, reference, progress_from=10, progress_to=90)

    await ctx.begin_step("verify", f"Verifying the pulled image {shown}", progress=92)
    if remote.image is not None:
        _verify_pulled(image, reference, remote.image)
    ctx.log(
        "INFO",
        f"{shown} is now image {image['Id'][:19]} (was {old_image_id[:19] if old_image_id else 'absent'})",
        event="image.updated",
        old_image_id=old_image_id,
        new_image_id=image["Id"],
        remote_digest=remote.digest,
    )
    return image


def _verify_pulled(image: dict[str, Any], reference: Reference, remote: RemoteImage) -> None:
    """Raise unless the pulled image is the one checked: its id for an index, else its digest.

    A mismatch means the tag moved between the check and the pull, so the operation is
    retried (TransientError), and the retry checks again.
    """
    shown = reference.familiar()
    if remote.is_index:
        if image["Id"] != remote.config_digest:
            raise TransientError(
                f"the pulled image {shown} has id {image['Id']}, but the registry's index "
                f"{remote.digest} named config {remote.config_digest} for this platform; the "
                "tag probably moved during the pull, so the check runs again"
            )
        return

    if remote.digest not in _repo_digests(image, reference):
        found = ", ".join(sorted(image.get("RepoDigests") or [])) or "none"
        raise TransientError(
            f"the pulled image {shown} does not carry the checked digest {remote.digest} "
            f"(its RepoDigests: {found}); the tag probably moved during the pull, so the check "
            "runs again"
        )


def _repo_digests(image: dict[str, Any], reference: Reference) -> set[str]:
    """Return the digests of the image's RepoDigests that belong to the reference's repository."""
    digests: set[str] = set()
    for entry in image.get("RepoDigests") or []:
        try:
            parsed = parse_reference(entry)
        except SpecError:
            continue
        if parsed.name == reference.name and parsed.digest is not None:
            digests.add(parsed.digest)
    return digests


# ---------------------------------------------------------------------------------------------
# Recreate children


async def _recreate_children(
    ctx: OperationContext, reference: Reference, *, old_image_id: str | None, current_image_id: str | None
) -> dict[str, Any]:
    """Insert one `recreate` row per container that uses the reference but not its current image.

    After an update that is every container of the reference. After an up-to-date check it is
    the containers still running an image that an earlier pull replaced, because
    `recreate: true` requests containers that run the newest image.
    Returns `{"children": [...]}`, or nothing when the option is off.
    """
    if not ctx.options.get("recreate"):
        return {}

    await ctx.begin_step("children", f"Finding the containers that use {reference.familiar()}", progress=95)
    targets = await _containers_to_recreate(
        ctx, reference, old_image_id=old_image_id, current_image_id=current_image_id
    )

    # The journal makes a resumed operation skip the rows an earlier claim inserted.
    # NOTE: a crash between an insert and its journal write would insert that row twice.
    children: list[dict[str, Any]] = list(ctx.journal.get("children", []))
    done = {child["container"] for child in children}
    for name, image in targets:
        if name in done:
            continue
        values: dict[str, Any] = {
            "type": "recreate",
            "container": name,
            "host": ctx.row.host,
            "parent_id": ctx.id,
        }
        if image is not None:
            values["image"] = image
        child_id = await ctx.store.insert(**values)
        children.append({"id": child_id, "container": name})
        await ctx.save_journal(children=children)
        ctx.log("INFO", f"Submitted recreate operation {child_id} for container {name}", event="operation.child", child_id=child_id, container=name)

    if not children:
        ctx.log("INFO", f"No container needs a recreate for {reference.familiar()}")
    return {"children": children}


async def _containers_to_recreate(
    ctx: OperationContext, reference: Reference, *, old_image_id: str | None, current_image_id: str | None
) -> list[tuple[str, str | None]]:
    """List (container name, image for the recreate row) of the containers to recreate.

    A container matches when its Config.Image names the same reference once parsed
    (`localhost:5001/team/app` is `localhost:5001/team/app:latest`), or names the old image by
    its id. The second kind gets the reference in the recreate row's `image` column, so the
    recreate moves it to this reference. A container created from another reference that
    shares the old image id is left alone, because its recreate would pull that other
    reference, not this one.
    """
    listed = await ctx.docker.call("containers", all=True, cli=render_command("docker", "ps", "--all", "--no-trunc"))
    targets: list[tuple[str, str | None]] = []
    for summary in listed:
        try:
            container = await ctx.docker.call(
                "inspect_container", summary["Id"], cli=render_command("docker", "container", "inspect", summary["Id"])
            )
        except DockerNotFound:
            continue  # removed since the listing

        name = str(container.get("Name", "")).lstrip("/")
        configured = (container.get("Config") or {}).get("Image") or ""
        image_id = container.get("Image")
        if image_id == current_image_id:
            continue

        if _names_reference(configured, reference):
            targets.append((name, None))
        elif old_image_id is not None and image_id == old_image_id and _is_id_of(configured, old_image_id):
            targets.append((name, reference.familiar()))
    return sorted(targets)


def _names_reference(configured: str, reference: Reference) -> bool:
    try:
        parsed = parse_reference(configured)
    except SpecError:
        return False
    return parsed.name == reference.name and parsed.tag == reference.tag and parsed.digest is None


def _is_id_of(configured: str, image_id: str) -> bool:
    """Check whether Config.Image is the image id, in full or as a prefix of 12 or more digits."""
    hex_digits = configured.removeprefix("sha256:")
    full = image_id.removeprefix("sha256:")
    return (
        len(hex_digits) >= MIN_ID_PREFIX
        and _HEX_RE.fullmatch(hex_digits) is not None
        and full.startswith(hex_digits)
    )
