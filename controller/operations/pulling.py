"""The pull step shared by the operations: policy, credentials, byte progress, verification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from controller.clients.docker import PullProgress
from controller.clients.docker_config import load_credentials
from controller.errors import PermanentError
from controller.operations.context import OperationContext
from controller.specs.cli_render import render_command
from controller.specs.reference import Reference

# Seconds between progress writes while a pull runs.
PROGRESS_INTERVAL = 0.5


def auth_config_for(ctx: OperationContext, reference: Reference) -> dict[str, str] | None:
    """Return docker-py's `auth_config` for the reference's registry, from Docker's config file."""
    path = Path(ctx.settings.docker_config) if ctx.settings.docker_config else None
    credentials = load_credentials(path, reference.registry)
    if credentials is None:
        return None
    if credentials.identity_token:
        return {"identitytoken": credentials.identity_token}
    if credentials.has_password:
        return {"username": credentials.username or "", "password": credentials.password or ""}
    return None


async def pull_image(
    ctx: OperationContext,
    reference: Reference,
    *,
    progress_from: int,
    progress_to: int,
) -> dict[str, Any]:
    """Pull `reference`, moving progress from `progress_from` to `progress_to` by layer bytes.

    Returns the inspect output of the pulled image. Any error in the pull stream fails the
    pull; the result is verified by inspecting the image afterwards.
    """
    repository, tag = reference.pull_name()
    shown = reference.familiar()
    progress = PullProgress()
    span = progress_to - progress_from

    async def report_progress() -> None:
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            if ctx.cancel_requested:
                # Cancelling the group aborts the pull; the caller then raises below.
                group.cancel_scope.cancel()
                return
            done = progress.fraction()
            await ctx.report(
                progress=progress_from + int(span * done),
                message=f"Pulling {shown}: {int(done * 100)}% of {_megabytes(sum(progress.totals.values()))}",
            )

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(report_progress)
            await ctx.docker.pull(
                repository,
                tag,
                auth_config=auth_config_for(ctx, reference),
                progress=progress,
                cli=render_command("docker", "pull", shown),
            )
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The pull and its reporter fail together; the caller wants the cause, not the group.
        raise group.exceptions[0] from None

    await ctx.check_cancel()
    image = await ctx.docker.inspect_image(shown)
    if image is None:
        raise PermanentError(f"pull of {shown} reported success but the engine has no such image afterwards")

    ctx.log(
        "INFO",
        f"Pulled {shown}: image {image['Id'][:19]}, {_megabytes(progress.bytes_downloaded())} downloaded",
        event="image.pulled",
        image_id=image["Id"],
        repo_digests=image.get("RepoDigests") or [],
        bytes_downloaded=progress.bytes_downloaded(),
    )
    await ctx.report(progress=progress_to)
    return image


async def ensure_image(
    ctx: OperationContext,
    reference: Reference,
    *,
    policy: str,
    progress_from: int,
    progress_to: int,
) -> dict[str, Any]:
    """Make the image present according to the pull policy and return its inspect output."""
    shown = reference.familiar()
    if policy != "always":
        image = await ctx.docker.inspect_image(shown)
        if image is not None:
            ctx.log("INFO", f"Image {shown} is present ({image['Id'][:19]}); pull policy {policy} skips the pull")
            await ctx.report(progress=progress_to)
            return image
        if policy == "never":
            raise PermanentError(
                f"image {shown} is not present and the pull policy is never; "
                "pull it first or set options.pull to missing"
            )
    return await pull_image(ctx, reference, progress_from=progress_from, progress_to=progress_to)


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"
