"""The `recreate` operation: replace a container by one from the newest image for its reference.

Steps, each journaled (see `recreate_state`) before the next one starts:
1. inspect: store the container's and its image's inspect output; nothing has changed yet;
2. pull: the new image (the `image` column, else the container's Config.Image) by
   `options.pull`; a failed pull changes nothing;
3. plan and create: the new container under a temporary name with the carry-over rules, its
   further networks connected, while the old one still runs, so an invalid configuration fails
   with the old one untouched. Static addresses, MACs and host ports do not conflict here,
   because engine 20.10 allocates them at start;
4. switch-over (`recreate_switch`): stop the old one with its own stop signal and timeout,
   rename it aside, give the new one the real name, start it;
5. health gate: running for `options.settle_seconds`, healthy if it has a healthcheck,
   within `options.health_timeout`;
6. finish: remove the old container without its volumes (the new one uses its anonymous
   volumes), and queue child recreates of the containers in its network namespace
   (`recreate_dependents`).

Any failure after the stop, and a cancellation, rolls back (`recreate_rollback`). A later
claim of the row reads the journal and the engine: before the stop it starts over, after it it
goes on with the switch-over, and an interrupted rollback is finished.
"""

from __future__ import annotations

import re
from typing import Any

import anyio

from controller import failpoints
from controller.clients.docker import EngineUnavailable
from controller.errors import CancelledByRequest, PermanentError, SpecError, TransientError
from controller.operations.context import LostClaim, OperationContext
from controller.operations.pulling import ensure_image
from controller.operations.recreate_dependents import find_dependents, insert_dependent_rows
from controller.operations.recreate_rollback import roll_back
from controller.operations.recreate_state import RecreateState, connect_networks
from controller.operations.recreate_switch import health_gate, recover_switch_flags, switch_over
from controller.specs.carryover import describe_changes, plan_recreate
from controller.specs.cli_render import render_command, render_create
from controller.specs.plan import LABEL_IMAGE_REFERENCE
from controller.specs.reference import parse_reference

# An image id, full (`sha256:...`) or short (hex only), as Config.Image contains it for a
# container created from an id.
_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")


async def run(ctx: OperationContext) -> dict[str, Any]:
    # Recreates run one at a time in a controller. Rows are ordered per container name only,
    # and a container and the ones in its network namespace (`container:NAME`) have different
    # names, yet recreating both at once stops one under the other.
    # TODO: order by namespace group instead, once rows carry the group, so unrelated
    # containers can be recreated in parallel again.
    lock = ctx.services.recreate_lock
    if lock.locked():
        await ctx.report(message="waiting for another recreate on this host to finish")
    async with lock:
        return await _run(ctx)


async def _run(ctx: OperationContext) -> dict[str, Any]:
    state = RecreateState(ctx)
    journal = ctx.journal

    if journal.get("rolled_back"):
        # An earlier claim finished the undo but not the final status write.
        ctx.result["rolled_back"] = True
        _raise_rolled_back(state, str(journal.get("rollback_reason")))
    if journal.get("rollback_reason"):
        ctx.log("WARNING", "Finishing the rollback that an earlier claim began", event="recreate.resume")
        await roll_back(state, str(journal["rollback_reason"]))
        if ctx.cancel_requested:
            raise CancelledByRequest(f"cancelled; rolled back, the original container {state.name} is back")
        _raise_rolled_back(state, str(journal["rollback_reason"]))

    if not journal.get("gate_passed"):
        if journal.get("stop_issued"):
            ctx.log("WARNING", f"Resuming the switch-over of {state.name} after the old container's stop", event="recreate.resume")
            await _switch_or_roll_back(state, resume=True)
        else:
            await _prepare_or_discard(state)
            await _switch_or_roll_back(state, resume=False)

    return await _finish(state)


async def _prepare_or_discard(state: RecreateState) -> None:
    """Snapshot, pull, plan and create; on failure remove the new container, the old one untouched."""
    ctx = state.ctx
    if ctx.journal:
        ctx.log("INFO", "Starting over: the earlier claim stopped before the old container was touched", event="recreate.resume")
        await _discard_new(state)
        ctx.journal.clear()

    try:
        await _prepare(state)
        await ctx.check_cancel()
    except (PermanentError, CancelledByRequest) as exc:
        await _discard_new(state)
        if isinstance(exc, CancelledByRequest):
            raise CancelledByRequest(f"{exc}; the container {state.name} was not changed") from exc
        raise PermanentError(f"{exc}; the container {state.name} was not changed") from exc


async def _prepare(state: RecreateState) -> None:
    ctx = state.ctx
    await ctx.begin_step("inspect", f"Inspecting container {ctx.request.container}", progress=1)
    container = await ctx.docker.inspect_container(str(ctx.request.container))
    if container is None:
        raise PermanentError(f"container {ctx.request.container} not found; check the container column")
    name = str(container["Name"]).lstrip("/")
    if name != str(ctx.request.container).lstrip("/"):
        # An id changes with every recreate, and rows naming one container by id and by name
        # would not be ordered against each other.
        raise SpecError(
            "container",
            f"{ctx.request.container!r} is the id of container {name}; name the container instead",
        )
    old_image = await ctx.docker.inspect_image(container["Image"])
    dependents = await find_dependents(ctx, container)
    await state.record(
        container=name,
        old_id=container["Id"],
        old_image_id=container["Image"],
        was_running=bool((container.get("State") or {}).get("Running")),
        auto_remove=bool((container.get("HostConfig") or {}).get("AutoRemove")),
        dependents=dependents,
        # NOTE: the snapshot keeps secret environment values in the database, because
        # restoring a deleted AutoRemove original needs them; API and CLI output redact them.
        snapshot={"container": container, "image": old_image},
    )
    ctx.log("INFO", f"Stored the inspect output of {name} ({container['Id'][:12]}) and of its image in the journal")

    image_ref, new_image = await _pull(state, container)

    await ctx.begin_step("plan", f"Planning the new container from {image_ref}", progress=62)
    plan = plan_recreate(
        container,
        old_image,
        new_image,
        name=state.temporary_name,
        image_ref=image_ref,
        network_container=ctx.options.get("network_container"),
    )
    if not _IMAGE_ID.fullmatch(image_ref):
        # The new container names its reference again, so the label that stood in for it goes.
        (plan.body.get("Labels") or {}).pop(LABEL_IMAGE_REFERENCE, None)
    for note in describe_changes(container, old_image, new_image):
        ctx.log("INFO", _loggable(note), event="recreate.carryover")

    await ctx.begin_step("create", f"Creating the new container as {state.temporary_name}", progress=65)
    await _discard_new(state)
    created = await ctx.docker.call(
        "create_container_from_config", plan.body, name=state.temporary_name, cli=render_create(plan)
    )
    await state.record(new_id=created["Id"])
    for warning in created.get("Warnings") or []:
        ctx.log("WARNING", f"Engine warning on create: {warning}")
    failpoints.reach("recreate.after_create")

    await connect_networks(ctx, created["Id"], state.temporary_name, plan.connect)
    await state.record(connected=True)


async def _pull(state: RecreateState, container: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Make the new image present and verified; return its reference and inspect output."""
    ctx = state.ctx
    config = container.get("Config") or {}
    text = ctx.request.image or str(config.get("Image") or container["Image"])
    labelled = (config.get("Labels") or {}).get(LABEL_IMAGE_REFERENCE)
    if not ctx.request.image and labelled and _IMAGE_ID.fullmatch(text):
        ctx.log("INFO", f"Container {state.name} runs image {text[:19]} by id; following its reference {labelled}")
        text = labelled

    if _IMAGE_ID.fullmatch(text):
        await ctx.begin_step("pull", f"Using image {text[:19]}, named by id, so nothing to pull", progress=5)
        image = await ctx.docker.inspect_image(text)
        if image is None:
            raise PermanentError(f"image {text[:19]} not found on the engine; name the new image in the image column")
        reference = text
    else:
        field = "image" if ctx.request.image else f"Config.Image of container {state.name}"
        parsed = parse_reference(text, field=field)
        reference = parsed.familiar()
        policy = ctx.options["pull"]
        await ctx.begin_step("pull", f"Pulling {reference} (pull policy {policy})", progress=5)
        image = await ensure_image(ctx, parsed, policy=policy, progress_from=5, progress_to=60)

    old_image_id = state.journal["old_image_id"]
    if image["Id"] == old_image_id:
        ctx.log("INFO", f"The image of {reference} is unchanged ({image['Id'][:19]}); recreating anyway")
    else:
        ctx.log("INFO", f"New image {image['Id'][:19]} replaces {str(old_image_id)[:19]}")
    await state.record(image=reference, new_image_id=image["Id"])
    return reference, image


async def _switch_or_roll_back(state: RecreateState, *, resume: bool) -> None:
    """Run the switch-over and the health gate; roll back on any failure but an engine outage."""
    ctx = state.ctx
    try:
        # Shielded: a shutdown must not leave the real name without a running container.
        with anyio.CancelScope(shield=True):
            if resume:
                await recover_switch_flags(state)
            await switch_over(state)
        if state.was_running:
            await health_gate(state)
    except (EngineUnavailable, LostClaim):
        # Nothing can be undone without the engine, or this claim is no longer ours; the
        # next claim goes on from the journal.
        raise
    except CancelledByRequest as exc:
        await roll_back(state, f"{exc}")
        raise CancelledByRequest(f"{exc}; rolled back, the original container {state.name} is back") from exc
    except (PermanentError, TransientError) as exc:
        await roll_back(state, str(exc))
        _raise_rolled_back(state, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug must not leave the original stopped
        reason = f"internal error: {type(exc).__name__}: {exc}"
        ctx.logger.exception("recreate.crashed", message=reason)
        await roll_back(state, reason)
        _raise_rolled_back(state, reason)

    await state.record(gate_passed=True)
    failpoints.reach("recreate.after_gate")


async def _finish(state: RecreateState) -> dict[str, Any]:
    """Remove the old container, queue the dependents and return the result."""
    ctx = state.ctx
    ctx.step = "finish"
    await ctx.report(progress=97, message=f"Removing the old container of {state.name}")
    if not state.journal.get("old_removed"):
        old = await ctx.docker.inspect_container(state.old_id)
        if old is not None:
            shown = str(old.get("Name", "")).lstrip("/")
            # Without v=True: the new container uses the old one's anonymous volumes.
            await ctx.docker.call("remove_container", state.old_id, force=True, cli=render_command("docker", "rm", "--force", shown))
        await state.record(old_removed=True)

    children = await insert_dependent_rows(state)
    downtime = state.journal.get("downtime_seconds")
    summary = f"{state.name} recreated from {state.journal.get('image')}"
    if not state.was_running:
        summary += " and left stopped, as the old container was"
    elif downtime is not None:
        summary += f"; downtime {downtime:.2f} s"
    return {
        **state.outcome(),
        "outcome": "recreated",
        "rolled_back": False,
        "dependent_operations": children,
        "summary": summary,
    }


async def _discard_new(state: RecreateState) -> None:
    """Remove a new container that an earlier step or claim left under the temporary name."""
    ctx = state.ctx
    for reference in dict.fromkeys(filter(None, (state.new_id, state.temporary_name))):
        found = await ctx.docker.inspect_container(reference)
        if found is None or found["Id"] == ctx.journal.get("old_id"):
            continue
        if str(found.get("Name", "")).lstrip("/") != state.temporary_name:
            continue
        await ctx.docker.call(
            "remove_container", found["Id"], force=True, cli=render_command("docker", "rm", "--force", state.temporary_name)
        )
        ctx.log("INFO", f"Removed the unused new container {state.temporary_name}")
        return


def _raise_rolled_back(state: RecreateState, reason: str) -> None:
    state.ctx.result.update(state.outcome())
    state.ctx.result["rolled_back"] = True
    raise PermanentError(f"rolled back: {reason}")


def _loggable(note: str) -> str:
    """Drop the command words from a carry-over note, because arguments may hold secrets."""
    if note.startswith("command: keeps entrypoint"):
        return "command: keeps the container's own entrypoint and command"
    if note.startswith("command: keeps command"):
        return "command: keeps the container's own command; the entrypoint follows the new image"
    return note
