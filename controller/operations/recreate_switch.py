"""The switch-over of a recreate: stop the old container, swap the names, start the new one, gate.

Part of the `recreate` operation. The downtime runs from the stop request to the new
container's start, so only the stop, two renames of containers that are not running (a few
milliseconds each on engine 20.10) and the start happen in it. Progress and message writes
happen before and after it; the journal writes in it carry the buffered log rows.

Every step is skipped when the journal shows it done, and `recover_switch_flags` rebuilds the
flags from the engine's state for a later claim, so the switch-over can be run again after a
crash at any point of it.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from controller import failpoints
from controller.clients.docker import DockerNotFound
from controller.errors import PermanentError
from controller.operations.context import OperationContext
from controller.operations.recreate_state import RecreateState
from controller.specs.cli_render import render_command
from controller.specs.redact import scrub, secret_values

# The engine's stop timeout when the container sets none (engine 20.10).
ENGINE_STOP_TIMEOUT = 10
# Seconds to wait for the engine to delete a stopped AutoRemove container.
AUTO_REMOVE_WAIT = 15.0
# Seconds between inspections of the new container during the health gate.
GATE_POLL_INTERVAL = 0.2
# Seconds between progress writes during the health gate.
GATE_REPORT_INTERVAL = 1.0


def stop_timeout(container: dict[str, Any]) -> int:
    """Return the seconds the engine waits between the stop signal and SIGKILL for `container`."""
    value = (container.get("Config") or {}).get("StopTimeout")
    if isinstance(value, int) and value >= 0:
        return value
    return ENGINE_STOP_TIMEOUT


async def recover_switch_flags(state: RecreateState) -> None:
    """Set the switch-over flags of the journal from the engine's state, for a later claim.

    A crash between a step and its journal write leaves the step done but unrecorded; the
    engine's state is the truth. Raises `PermanentError` when the new container is gone.
    """
    ctx = state.ctx
    new = await ctx.docker.inspect_container(state.new_id or state.temporary_name)
    if new is None:
        raise PermanentError(
            f"the new container {state.temporary_name} ({(state.new_id or 'no id')[:12]}) no longer exists"
        )
    old = await ctx.docker.inspect_container(state.old_id)
    old_running = bool(old and (old.get("State") or {}).get("Running"))
    old_name = _name(old) if old else None
    new_state = new.get("State") or {}

    flags = {
        "new_id": new["Id"],
        "stopped": not old_running,
        "old_renamed": old_name != state.name,
        "new_renamed": _name(new) == state.name,
        "started": bool(new_state.get("Running")),
    }
    if flags["started"] and state.journal.get("downtime_seconds") is None:
        # Started, but the crash came before the downtime was journaled: count up to now.
        flags["downtime_seconds"] = round(time.time() - float(state.journal["stop_issued"]), 3)
    ctx.log(
        "INFO",
        "Engine state: old container "
        + (f"{old_name}, {'running' if old_running else 'stopped'}" if old else "gone")
        + f"; new container {_name(new)}, {'running' if flags['started'] else 'not running'}",
        event="recreate.resume",
    )
    await state.record(**flags)


async def switch_over(state: RecreateState) -> None:
    """Stop the old container, rename it aside, give the new one the real name and start it."""
    ctx = state.ctx
    journal = state.journal
    old_name = state.name
    stopped_at: float | None = None

    if not journal.get("stopped"):
        timeout = stop_timeout(state.snapshot_container)
        await ctx.report(progress=70, message=f"Stopping the old container {old_name} (timeout {timeout} s)")
        _step(ctx, "stop", f"Stopping the old container {old_name} with its stop signal, timeout {timeout} s")
        await state.record(stop_issued=time.time())
        stopped_at = time.monotonic()
        if state.was_running:
            # docker-py extends its HTTP timeout by `timeout`, so the engine's own timeout
            # always fires first.
            await ctx.docker.call(
                "stop", state.old_id, timeout=timeout, cli=render_command("docker", "stop", "--time", str(timeout), old_name)
            )
        if state.auto_remove:
            await wait_removed(ctx, state.old_id, old_name)
        await state.record(stopped=True)
        failpoints.reach("recreate.after_stop")

    if not journal.get("old_renamed"):
        _step(ctx, "rename", f"Renaming the old container to {state.aside_name}")
        if not state.auto_remove:
            await ctx.docker.call(
                "rename", state.old_id, state.aside_name, cli=render_command("docker", "rename", old_name, state.aside_name)
            )
        await state.record(old_renamed=True)
        failpoints.reach("recreate.after_rename_old")

    if not journal.get("new_renamed"):
        _step(ctx, "rename", f"Renaming the new container to {old_name}")
        await ctx.docker.call(
            "rename", state.new_id, old_name, cli=render_command("docker", "rename", state.temporary_name, old_name)
        )
        await state.record(new_renamed=True)
        failpoints.reach("recreate.after_rename_new")

    if state.was_running and not journal.get("started"):
        _step(ctx, "start", f"Starting the new container {old_name}")
        await ctx.docker.call("start", state.new_id, cli=render_command("docker", "start", old_name))
        if stopped_at is not None:
            downtime = time.monotonic() - stopped_at
        else:
            # Resumed by a later claim: the downtime includes the time the controller was gone.
            downtime = time.time() - float(journal["stop_issued"])
        await state.record(started=True, downtime_seconds=round(downtime, 3))
        ctx.log("INFO", f"New container {old_name} started; downtime {downtime:.3f} s", event="recreate.started")
        failpoints.reach("recreate.after_start")


async def health_gate(state: RecreateState) -> None:
    """Wait until the new container has run `settle_seconds` and is healthy if it has a healthcheck.

    Raises `PermanentError` naming the reason when it exits, restarts, turns unhealthy or is not
    healthy within `health_timeout`, and `CancelledByRequest` when a user cancels meanwhile.
    """
    ctx = state.ctx
    settle = float(ctx.options["settle_seconds"])
    timeout = max(float(ctx.options["health_timeout"]), settle)
    await ctx.begin_step(
        "gate",
        f"Checking that {state.name} runs for {settle:g} s and passes its healthcheck (at most {timeout:g} s)",
        progress=85,
    )

    first = await _inspect_new(state)
    started_at = first["State"].get("StartedAt")
    restarts = first.get("RestartCount", 0)
    began = time.monotonic()
    reported = began

    while True:
        info = await _inspect_new(state)
        current = info.get("State") or {}
        restarted = info.get("RestartCount", 0) != restarts or current.get("StartedAt") != started_at
        if not current.get("Running") or current.get("Restarting") or restarted:
            raise PermanentError(await _exit_reason(ctx, info, restarted=restarted))

        health = (current.get("Health") or {}).get("Status")
        elapsed = time.monotonic() - began
        if health == "unhealthy":
            raise PermanentError(f"the new container turned unhealthy: {_last_check_output(current)}")
        if elapsed >= settle and health in (None, "healthy"):
            ctx.log("INFO", f"The new container ran {elapsed:.1f} s, health {health or 'not checked'}", event="recreate.gate_passed")
            return
        if elapsed >= timeout:
            raise PermanentError(
                f"the new container was not healthy within the health timeout of {timeout:g} s "
                f"(health status {health}; last check: {_last_check_output(current)})"
            )

        await ctx.check_cancel()
        if time.monotonic() - reported >= GATE_REPORT_INTERVAL:
            reported = time.monotonic()
            await ctx.report(
                progress=85 + int(10 * min(1.0, elapsed / timeout)),
                message=f"Health gate: {state.name} running {elapsed:.0f} s of {settle:g} s, health {health or 'not checked'}",
            )
        await anyio.sleep(GATE_POLL_INTERVAL)


def _step(ctx: OperationContext, step: str, message: str) -> None:
    """Name the step and log it; its log row is written with the next journal write."""
    ctx.step = step
    ctx.log("INFO", message, event="operation.step")


def _name(container: dict[str, Any]) -> str:
    return str(container.get("Name", "")).lstrip("/")


async def wait_removed(ctx: OperationContext, container_id: str, name: str) -> None:
    """Wait until the engine has deleted an exited AutoRemove container, which frees its name."""
    deadline = time.monotonic() + AUTO_REMOVE_WAIT
    while await ctx.docker.inspect_container(container_id) is not None:
        if time.monotonic() > deadline:
            raise PermanentError(
                f"the container {name} has AutoRemove set but still existed {AUTO_REMOVE_WAIT:g} s after it stopped"
            )
        await anyio.sleep(0.02)
    ctx.log("INFO", f"The engine removed the container {name} when it stopped (AutoRemove)")


async def _inspect_new(state: RecreateState) -> dict[str, Any]:
    info = await state.ctx.docker.inspect_container(str(state.new_id))
    if info is None:
        raise PermanentError(f"the new container {state.name} ({str(state.new_id)[:12]}) was removed during the health gate")
    return info


async def _exit_reason(ctx: OperationContext, info: dict[str, Any], *, restarted: bool) -> str:
    """Describe why the new container is not running, with the tail of its output."""
    current = info.get("State") or {}
    if restarted:
        reason = "the new container restarted during the health gate"
    else:
        reason = f"the new container exited with code {current.get('ExitCode')}"
    if current.get("Error"):
        reason += f" ({current['Error']})"
    try:
        output = await ctx.docker.call("logs", info["Id"], tail=10, stdout=True, stderr=True)
    except (DockerNotFound, PermanentError):
        output = b""
    text = output.decode(errors="replace").strip()[-500:] if output else ""
    # The output may print the environment; the container's secret values never reach the row.
    text = scrub(text, secret_values((info.get("Config") or {}).get("Env")))
    if text:
        reason += f"; last output: {text}"
    return reason


def _last_check_output(current: dict[str, Any]) -> str:
    log = (current.get("Health") or {}).get("Log") or []
    if not log:
        return "no check has finished yet"
    last = log[-1]
    output = str(last.get("Output") or "").strip()[-300:]
    return f"exit code {last.get('ExitCode')}" + (f", output {output!r}" if output else "")
