"""The `start` operation: create and start a container from a Compose service mapping.

Steps: plan (parse and validate the spec), inspect (idempotency against an existing
container), pull (by the pull policy), prepare (missing networks and volumes), create,
connect (further networks, since API 1.41 creates on one network only), start, verify.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from controller.clients.docker import DockerNotFound
from controller.errors import PermanentError, SpecError
from controller.operations.context import OperationContext
from controller.operations.pulling import ensure_image
from controller.operations.recreate_state import connect_networks
from controller.specs.cli_render import (
    render_command,
    render_create,
    render_network_create,
    render_volume_create,
)
from controller.specs.compose import plan_compose_service, plan_service
from controller.specs.compose_file import load_compose_service
from controller.specs.plan import LABEL_SPEC_HASH, ContainerPlan
from controller.specs.redact import scrub, secret_values
from controller.specs.reference import parse_reference

COMPOSE_FILE_KEYS = {"compose_file", "service", "project"}


def build_plan(ctx: OperationContext) -> ContainerPlan:
    """Turn the row's spec, container and image columns into a container plan."""
    request = ctx.request
    spec = request.spec or {}

    if "compose_file" in spec:
        unknown = set(spec) - COMPOSE_FILE_KEYS
        if unknown:
            raise SpecError(
                f"spec.{sorted(unknown)[0]}",
                "a compose-file spec takes only compose_file, service and project; "
                "put service keys into the compose file",
            )
        if not isinstance(spec.get("service"), str) or not spec["service"]:
            raise SpecError("spec.service", "name the service of the compose file to start")
        compose = load_compose_service(
            Path(spec["compose_file"]),
            service=spec["service"],
            project=spec.get("project"),
            environ=os.environ,
        )
        return plan_compose_service(compose, name=request.container, image=request.image)

    return plan_service(spec, name=request.container, image=request.image)


async def run(ctx: OperationContext) -> dict[str, Any]:
    await ctx.begin_step("plan", "Validating the spec", progress=1)
    plan = build_plan(ctx)
    reference = parse_reference(plan.image)
    wanted_hash = (plan.body.get("Labels") or {}).get(LABEL_SPEC_HASH)
    ctx.log("DEBUG", f"Planned container {plan.name} from image {reference.familiar()}", spec_hash=wanted_hash)

    await ctx.begin_step("inspect", f"Looking for an existing container {plan.name}", progress=3)
    existing = await ctx.docker.inspect_container(plan.name)
    if existing is not None:
        outcome = await _reconcile_existing(ctx, plan, existing, wanted_hash)
        if outcome is not None:
            return outcome

    policy = ctx.options.get("pull", "missing")
    await ctx.begin_step("pull", f"Ensuring image {reference.familiar()} (pull policy {policy})", progress=5)
    image = await ensure_image(ctx, reference, policy=policy, progress_from=5, progress_to=80)

    if plan.networks or plan.volumes:
        await ctx.begin_step("prepare", "Creating missing networks and volumes", progress=82)
        await _ensure_networks(ctx, plan)
        await _ensure_volumes(ctx, plan)

    await ctx.begin_step("create", f"Creating container {plan.name}", progress=86)
    created = await ctx.docker.call(
        "create_container_from_config", plan.body, name=plan.name, cli=render_create(plan)
    )
    container_id = created["Id"]
    # Not forced to disk: a claim resumed after a crash finds the container by its name and
    # spec-hash label even without this entry, and starts it.
    ctx.note_journal(created_container_id=container_id)
    for warning in created.get("Warnings") or []:
        ctx.log("WARNING", f"Engine warning on create: {warning}")

    await _connect_networks(ctx, plan, container_id, attached=set())

    await ctx.begin_step("start", f"Starting container {plan.name}", progress=92)
    try:
        await ctx.docker.call("start", container_id, cli=render_command("docker", "start", plan.name))
    except PermanentError as exc:
        # A container the engine created but cannot start (a missing device, say) would block
        # the corrected resubmission as "exists with a different configuration".
        ctx.log("WARNING", f"Removing container {plan.name}, which the engine created but could not start")
        await ctx.docker.call(
            "remove_container", container_id, force=True, cli=render_command("docker", "rm", "--force", plan.name)
        )
        raise PermanentError(f"start of container {plan.name} failed, so it was removed again: {exc}") from exc

    await ctx.begin_step("verify", f"Checking that {plan.name} runs", progress=97)
    state = await _running_state(ctx, plan)
    return {
        "outcome": "created",
        "container_id": container_id,
        "container": plan.name,
        "image": reference.familiar(),
        "image_id": image["Id"],
        "spec_hash": wanted_hash,
        "started_at": state.get("StartedAt"),
    }


async def _reconcile_existing(
    ctx: OperationContext, plan: ContainerPlan, existing: dict[str, Any], wanted_hash: str | None
) -> dict[str, Any] | None:
    """Handle a container that already has the name; None means go on and create it."""
    labels = (existing.get("Config") or {}).get("Labels") or {}
    current_hash = labels.get(LABEL_SPEC_HASH)
    running = bool((existing.get("State") or {}).get("Running"))
    container_id = existing["Id"]
    result = {
        "container_id": container_id,
        "container": plan.name,
        "image_id": existing.get("Image"),
        "spec_hash": wanted_hash,
    }

    if current_hash == wanted_hash and running:
        ctx.log("INFO", f"Container {plan.name} already runs from the same spec; nothing to do")
        return {**result, "outcome": "already_running"}

    if current_hash == wanted_hash:
        # An earlier claim may have stopped between the create and the connects.
        attached = set(((existing.get("NetworkSettings") or {}).get("Networks") or {}))
        await _connect_networks(ctx, plan, container_id, attached=attached)
        await ctx.begin_step("start", f"Starting the existing stopped container {plan.name}", progress=50)
        await ctx.docker.call("start", container_id, cli=render_command("docker", "start", plan.name))
        await _running_state(ctx, plan)
        return {**result, "outcome": "started_existing"}

    if ctx.journal.get("created_container_id") == container_id:
        # Our own container from an earlier, interrupted claim of this operation.
        ctx.log("INFO", f"Resuming with container {container_id[:12]} created by an earlier attempt")
        attached = set(((existing.get("NetworkSettings") or {}).get("Networks") or {}))
        await _connect_networks(ctx, plan, container_id, attached=attached)
        await ctx.begin_step("start", f"Starting container {plan.name}", progress=92)
        await ctx.docker.call("start", container_id, cli=render_command("docker", "start", plan.name))
        await _running_state(ctx, plan)
        return {**result, "outcome": "created"}

    if not ctx.options.get("replace"):
        raise PermanentError(
            f"container {plan.name} already exists with a different configuration "
            f"(spec hash {current_hash or 'none'}, wanted {wanted_hash}); submit a recreate, "
            "or set options.replace to true to remove and replace it"
        )

    await ctx.begin_step("replace", f"Removing the existing container {plan.name} to replace it", progress=4)
    await ctx.docker.call(
        "remove_container", container_id, force=True, cli=render_command("docker", "rm", "--force", plan.name)
    )
    return None


async def _connect_networks(ctx: OperationContext, plan: ContainerPlan, container_id: str, *, attached: set[str]) -> None:
    """Connect the container to the plan's further networks that it is not attached to yet."""
    missing = [attachment for attachment in plan.connect if attachment.name not in attached]
    await connect_networks(ctx, container_id, plan.name, missing)


async def _exists(ctx: OperationContext, kind: str, name: str, *, external: bool) -> bool:
    """Tell whether a network or volume exists; an external one must exist already."""
    try:
        await ctx.docker.call(f"inspect_{kind}", name, cli=render_command("docker", kind, "inspect", name))
        return True
    except DockerNotFound:
        if external:
            raise PermanentError(f"{kind} {name} is declared external but does not exist; create it first") from None
        return False


async def _ensure_networks(ctx: OperationContext, plan: ContainerPlan) -> None:
    for network in plan.networks:
        if await _exists(ctx, "network", network.name, external=network.external):
            continue
        await ctx.docker.call(
            "create_network",
            network.name,
            driver=network.driver,
            options=network.driver_opts or None,
            ipam=network.ipam,
            internal=network.internal,
            labels=network.labels or None,
            enable_ipv6=network.enable_ipv6,
            attachable=network.attachable or None,
            cli=render_network_create(network),
        )
        ctx.log("INFO", f"Created network {network.name}", event="network.created")


async def _ensure_volumes(ctx: OperationContext, plan: ContainerPlan) -> None:
    for volume in plan.volumes:
        if await _exists(ctx, "volume", volume.name, external=volume.external):
            continue
        await ctx.docker.call(
            "create_volume",
            volume.name,
            driver=volume.driver,
            driver_opts=volume.driver_opts or None,
            labels=volume.labels or None,
            cli=render_volume_create(volume),
        )
        ctx.log("INFO", f"Created volume {volume.name}", event="volume.created")


async def _running_state(ctx: OperationContext, plan: ContainerPlan) -> dict[str, Any]:
    """Return the container's state, or fail when it is not running.

    The check comes right after the start, so a process that exits a few milliseconds later
    passes it. With `options.settle_seconds` the check waits that long first.
    """
    settle = float(ctx.options.get("settle_seconds") or 0)
    if settle > 0:
        await anyio.sleep(settle)
    inspect = await ctx.docker.inspect_container(plan.name)
    state = (inspect or {}).get("State") or {}
    if state.get("Running"):
        return state

    tail = ""
    try:
        output = await ctx.docker.call("logs", plan.name, tail=20, stdout=True, stderr=True)
        tail = output.decode(errors="replace").strip()[-1000:] if output else ""
    except PermanentError:
        pass
    # The output may print the environment; the spec's secret values never reach the row.
    tail = scrub(tail, secret_values(plan.body.get("Env")))
    raise PermanentError(
        f"container {plan.name} exited right after start with exit code {state.get('ExitCode')}"
        f"{': ' + state['Error'] if state.get('Error') else ''}"
        f"{'; last output: ' + tail if tail else ''}; check its command and configuration"
    )
