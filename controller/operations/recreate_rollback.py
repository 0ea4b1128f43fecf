"""Undo a recreate: remove the new container and bring the original back under its name.

Part of the `recreate` operation, used on any failure after the old container's stop and on
cancellation. The original is renamed back and started again when it was running. When it no
longer exists (an AutoRemove container is deleted by the engine on its stop), it is created
again from the inspect snapshot in the journal, from its own image, with its anonymous volumes
re-attached by name.

The undo runs shielded from shutdown, and `rollback_reason` is in the journal before it
begins, so a later claim finishes an undo that an engine outage or a crash interrupted.
"""

from __future__ import annotations

import anyio

from controller.clients.docker import DockerConflict, DockerNotFound, EngineUnavailable
from controller.errors import PermanentError
from controller.operations.recreate_state import RecreateState, connect_networks
from controller.operations.recreate_switch import wait_removed
from controller.specs.carryover import plan_recreate
from controller.specs.cli_render import render_command, render_create
from controller.specs.plan import LABEL_IMAGE_REFERENCE


async def roll_back(state: RecreateState, reason: str) -> None:
    """Restore the original container after `reason` made the recreate fail.

    Sets `result.rolled_back`. Raises `EngineUnavailable` when the engine is unreachable (a
    later claim finishes the undo) and `PermanentError` when the original cannot be restored.
    """
    ctx = state.ctx
    ctx.step = "rollback"
    ctx.log("WARNING", f"Rolling back the recreate of {state.name}: {reason}", event="recreate.rollback")
    await state.record(rollback_reason=reason)
    await ctx.report(message=f"Rolling back: {reason}")

    try:
        with anyio.CancelScope(shield=True):
            await _remove_new(state)
            await _restore_original(state)
    except EngineUnavailable:
        raise
    except PermanentError as exc:
        raise PermanentError(
            f"rollback failed: {exc}; the recreate had failed because {reason}. The original "
            f"container's inspect output is in result.journal.snapshot; restore {state.name} from it by hand"
        ) from exc

    await state.record(rolled_back=True)
    ctx.result.update(state.outcome())
    ctx.result["rolled_back"] = True
    ctx.log("WARNING", f"Rolled back: {state.name} is the original container again", event="recreate.rolled_back")


async def _remove_new(state: RecreateState) -> None:
    """Remove the new container, keeping volumes, because the anonymous ones are the original's."""
    ctx = state.ctx
    new = await ctx.docker.inspect_container(state.new_id or state.temporary_name)
    if new is None or new["Id"] == state.journal.get("old_id"):
        return
    shown = str(new.get("Name", "")).lstrip("/")
    try:
        await ctx.docker.call("remove_container", new["Id"], force=True, cli=render_command("docker", "rm", "--force", shown))
    except (DockerConflict, DockerNotFound):
        # An AutoRemove container that exited is being removed by the engine already.
        await wait_removed(ctx, new["Id"], shown)
    ctx.log("INFO", f"Removed the new container {shown} ({new['Id'][:12]})")


async def _restore_original(state: RecreateState) -> None:
    ctx = state.ctx
    original = await ctx.docker.inspect_container(state.old_id)
    if original is None:
        original_id = await _create_original(state)
    else:
        original_id = original["Id"]
        current_name = str(original.get("Name", "")).lstrip("/")
        if current_name != state.name:
            await ctx.docker.call(
                "rename", original_id, state.name, cli=render_command("docker", "rename", current_name, state.name)
            )

    if not state.was_running:
        return
    info = await ctx.docker.inspect_container(original_id)
    if not ((info or {}).get("State") or {}).get("Running"):
        await ctx.docker.call("start", original_id, cli=render_command("docker", "start", state.name))
        info = await ctx.docker.inspect_container(original_id)
    current = (info or {}).get("State") or {}
    if not current.get("Running"):
        raise PermanentError(
            f"the original container {state.name} did not keep running after its restart "
            f"(exit code {current.get('ExitCode')})"
        )


async def _create_original(state: RecreateState) -> str:
    """Create the original container again from the journal's snapshot; return its id."""
    ctx = state.ctx
    snapshot = state.snapshot_container
    image_id = str(state.journal["old_image_id"])
    image = await ctx.docker.inspect_image(image_id)
    if image is None:
        raise PermanentError(f"the original container and its image {image_id[:19]} were both removed")

    # Keep the reference as Config.Image while it still names the original image, so a later
    # recreate can pull its reference; otherwise pin the image by id.
    reference = (snapshot.get("Config") or {}).get("Image") or image_id
    tagged = await ctx.docker.inspect_image(reference)
    if tagged is None or tagged["Id"] != image_id:
        reference = image_id

    plan = plan_recreate(snapshot, image, image, name=state.name, image_ref=reference)
    original_reference = (snapshot.get("Config") or {}).get("Image")
    if reference == image_id and original_reference and original_reference != image_id:
        # Pinned by id, the container would never follow its tag again; the label keeps the
        # reference for the next recreate.
        plan.body.setdefault("Labels", {})[LABEL_IMAGE_REFERENCE] = original_reference
    ctx.log("WARNING", f"The original container {state.name} no longer exists; creating it again from the snapshot")
    created = await ctx.docker.call("create_container_from_config", plan.body, name=state.name, cli=render_create(plan))
    await connect_networks(ctx, created["Id"], state.name, plan.connect)
    await state.record(restored_id=created["Id"])
    return str(created["Id"])

