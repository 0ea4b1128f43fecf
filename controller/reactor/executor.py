"""Carry out one claimed operation: validate, run, retry transient failures, finish.

The rule for each outcome:
- the runner returns: `completed` with progress 100;
- `SpecError` or any other `PermanentError`: `failed` at once, with the error;
- `EngineUnavailable`: back to `pending` with the journal, to resume when the engine responds;
- other `TransientError`: retried in place with exponential backoff and jitter (honouring the
  delay the other side asked for) until `options.max_attempts` tries, then `failed`;
- `CancelledByRequest`: `cancelled`;
- `LostClaim`: nothing is written, another claim owns the row now;
- shutdown (the task is cancelled): back to `pending` with the journal;
- any other exception is a bug: `failed` with the exception's text, traceback in the log.
The final write runs in a shielded cancel scope, so a shutdown cannot lose it.
"""

from __future__ import annotations

import random
import traceback
from typing import Any

import anyio

from controller.clients.database import NewLog, OperationRow
from controller.clients.docker import EngineUnavailable
from controller.errors import CancelledByRequest, PermanentError, TransientError
from controller.logs import get_logger
from controller.operations import runner_for
from controller.operations.context import LostClaim, OperationContext, Services, current_operation
from controller.specs.row import parse_request

BACKOFF_BASE = 1.0  # seconds before the second try
BACKOFF_MAX = 60.0  # seconds, the longest wait between tries


def backoff_delay(tries: int, *, retry_after: float | None = None) -> float:
    """Return the wait before try `tries + 1`: exponential with full jitter, at least Retry-After."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (tries - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return round(delay, 2)


class Outcome:
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    LOST = "lost"


async def execute(
    row: OperationRow, services: Services, *, on_engine_down: Any = None, on_context: Any = None
) -> str:
    """Run `row` (already claimed) to an outcome and write it; return the outcome."""
    store = services.store
    try:
        request = parse_request(
            type=row.type, container=row.container, image=row.image, spec=row.spec, options=row.options
        )
    except PermanentError as exc:
        logger = get_logger(operation_id=row.id, type=row.type, container=row.container)
        logger.error("operation.invalid", message=f"invalid operation: {exc}; the row is failed")
        log = NewLog(row.id, "ERROR", f"Invalid operation: {exc}")
        await _shielded(
            store.finish(row.id, row.attempts, status="failed", message="invalid operation", error=str(exc), logs=[log])
        )
        return Outcome.FAILED

    ctx = OperationContext(row, request, services)
    if on_context is not None:
        on_context(ctx)
    token = current_operation.set(ctx)
    try:
        return await _run_with_retries(ctx, on_engine_down=on_engine_down)
    finally:
        current_operation.reset(token)


async def _run_with_retries(ctx: OperationContext, *, on_engine_down: Any) -> str:
    store = ctx.store
    runner = runner_for(ctx.request.type)
    if runner is None:
        ctx.log("ERROR", f"operation type {ctx.request.type} is not implemented by this controller version")
        return await _finish(ctx, "failed", message="not supported", error=f"type: operation type {ctx.request.type!r} is not supported by this dockwright version")

    max_attempts = ctx.options["max_attempts"]
    tries = int(ctx.result.get("tries", 0))
    ctx.log("INFO", f"Claimed by {ctx.settings.instance_id} (claim {ctx.attempt})", event="operation.claimed")

    delay = 0.0
    while True:
        tries += 1
        ctx.result["tries"] = tries
        try:
            if delay:
                await _sleep_unless_cancelled(ctx, delay)
            outcome = await runner(ctx)
        except LostClaim as exc:
            ctx.logger.warning("operation.lost", message=str(exc))
            return Outcome.LOST
        except CancelledByRequest as exc:
            ctx.log("INFO", str(exc), event="operation.cancelled")
            return await _finish(ctx, "cancelled", message=str(exc))
        except EngineUnavailable as exc:
            if on_engine_down is not None:
                on_engine_down(str(exc))
            message = f"waiting for the Docker engine: {exc}"
            # An outage is the engine's fault, not the operation's: it uses up neither a try
            # nor, for the stale sweep, a claim.
            ctx.result["tries"] = tries - 1
            ctx.result["engine_waits"] = int(ctx.result.get("engine_waits", 0)) + 1
            ctx.log("WARNING", f"{exc}; the operation returns to pending and resumes when the engine responds")
            await _shielded(store.release(ctx.id, ctx.attempt, message=message, result=ctx.result, logs=ctx.take_logs()))
            return Outcome.RELEASED
        except TransientError as exc:
            if tries >= max_attempts:
                error = f"gave up after {tries} tries: {exc}"
                ctx.log("ERROR", error, event="operation.failed")
                return await _finish(ctx, "failed", message="failed", error=error)
            delay = backoff_delay(tries, retry_after=exc.retry_after)
            message = f"{exc}; retrying in {delay:.1f} s (try {tries + 1} of {max_attempts})"
            ctx.log("WARNING", message, event="operation.retry")
            try:
                await ctx.report(message=message)
            except LostClaim:
                return Outcome.LOST
            continue
        except PermanentError as exc:
            ctx.log("ERROR", str(exc), event="operation.failed")
            return await _finish(ctx, "failed", message="failed", error=str(exc))
        except anyio.get_cancelled_exc_class():
            if (ctx.id, ctx.attempt) in ctx.services.lost_claims:
                ctx.services.lost_claims.discard((ctx.id, ctx.attempt))
                ctx.logger.warning("operation.lost", message="claim lost while running; stopping without writing the row")
                raise
            ctx.log("WARNING", "Controller shutting down; the operation returns to pending and resumes at the next start", event="operation.released")
            await _shielded(
                store.release(ctx.id, ctx.attempt, message="returned to pending at controller shutdown", result=ctx.result, logs=ctx.take_logs())
            )
            raise
        except Exception as exc:  # noqa: BLE001 - the rule for unforeseen errors
            ctx.logger.error("operation.crashed", message=str(exc), traceback=traceback.format_exc())
            ctx.log("ERROR", f"internal error: {type(exc).__name__}: {exc}")
            return await _finish(ctx, "failed", message="failed", error=f"internal error: {type(exc).__name__}: {exc}")

        ctx.result.update(outcome)
        message = _summary(ctx, outcome)
        ctx.log("INFO", message, event="operation.completed")
        return await _finish(ctx, "completed", message=message, progress=100)


def _summary(ctx: OperationContext, outcome: dict[str, Any]) -> str:
    kind = outcome.get("outcome")
    name = outcome.get("container") or ctx.row.container or ""
    return {
        "already_running": f"{name} already running",
        "started_existing": f"started the existing container {name}",
        "created": f"{name} created and running as {str(outcome.get('container_id'))[:12]}",
    }.get(str(kind), outcome.get("summary") or "completed")


async def _finish(ctx: OperationContext, status: str, *, message: str, error: str | None = None, progress: int | None = None) -> str:
    written = await _shielded(
        ctx.store.finish(
            ctx.id, ctx.attempt, status=status, message=message, error=error, result=ctx.result, progress=progress, logs=ctx.take_logs()
        )
    )
    if not written:
        ctx.logger.warning("operation.lost", message="the claim was lost before the final status could be written")
        return Outcome.LOST
    return status


async def _shielded(awaitable: Any) -> Any:
    with anyio.CancelScope(shield=True):
        return await awaitable


async def _sleep_unless_cancelled(ctx: OperationContext, delay: float) -> None:
    """Sleep `delay` seconds, checking for a cancellation request every second."""
    remaining = delay
    while remaining > 0:
        await anyio.sleep(min(1.0, remaining))
        remaining -= 1.0
        await ctx.check_cancel()
