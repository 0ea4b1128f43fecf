"""The context of a running operation: its row, its journal, and how it reports progress.

Every log line of an operation becomes a row in `docker_operation_logs` and a structlog
event with the same ids. The structlog event goes out at once; the row waits in memory with
the latest progress and message for at most `REPORT_INTERVAL`, and all of them are written in
one transaction, so a chatty step costs one commit, not one per line.
Every write is fenced by the claim's attempt; when the claim was lost, `LostClaim` stops the
operation.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from controller.clients.database import NewLog, OperationRow
from controller.clients.docker import DockerClient, DockerNotFound, EngineUnavailable
from controller.clients.store import Store
from controller.config import Settings
from controller.errors import CancelledByRequest
from controller.logs import REDACTED, get_logger
from controller.specs.redact import needs_redaction, redact
from controller.specs.row import OperationRequest

# The operation whose task is running; Docker call observers use it to attribute calls.
current_operation: contextvars.ContextVar["OperationContext | None"] = contextvars.ContextVar(
    "current_operation", default=None
)

_STRUCTLOG_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error"}
_CHECKED = {REDACTED: True}


# Seconds that progress, messages and log rows may wait in memory before they are written,
# so a quick operation costs one write at its end instead of one per step.
REPORT_INTERVAL = 0.25


class LostClaim(Exception):
    """Another controller took the row over, or it was finished elsewhere."""


@dataclass
class Services:
    """Shared clients and settings that the reactor passes to each operation."""

    store: Store
    docker: DockerClient
    settings: Settings
    registry: Any = None  # the registry client, once configured
    # Ids of running operations whose cancellation was requested; the reactor fills it.
    cancelled: set[int] = field(default_factory=set)
    # Held by a running recreate; see `controller.operations.recreate.run`.
    recreate_lock: anyio.Lock = field(default_factory=anyio.Lock)
    # (id, attempt) of claims that the reactor cancelled because the row now belongs to
    # another claim. Their operations stop without the shutdown's write.
    lost_claims: set[tuple[int, int]] = field(default_factory=set)


class OperationContext:
    """One claim of one operation."""

    def __init__(self, row: OperationRow, request: OperationRequest, services: Services) -> None:
        self.row = row
        self.request = request
        self.services = services
        self.store = services.store
        self.docker = services.docker
        self.settings = services.settings
        self.attempt = row.attempts
        self.result: dict[str, Any] = row.result_data()
        self.journal: dict[str, Any] = self.result.setdefault("journal", {})
        self.step = "claimed"
        # Another service may have written anything into `progress`; only a number counts.
        self.progress_value = row.progress if isinstance(row.progress, int) and not isinstance(row.progress, bool) else 0
        if row.cancel_requested:
            services.cancelled.add(row.id)
        self.logger = get_logger(operation_id=row.id, type=row.type, container=row.container)
        self._pending_values: dict[str, Any] = {}
        # The claim itself was the last write.
        self._last_write = time.monotonic()
        self._pending_logs: list[NewLog] = []
        self._flush_lock = anyio.Lock()

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def options(self) -> dict[str, Any]:
        return self.request.options

    # Logging

    def log(self, level: str, message: str, *, event: str = "operation.log", **details: Any) -> None:
        """Record a log line: buffered for the table, emitted at once as a structlog event."""
        if details and needs_redaction(details):
            details = redact(details)
        self._pending_logs.append(NewLog(self.row.id, level, message, details or None))
        # The bound ids are plain values and `details` is redacted above.
        getattr(self.logger, _STRUCTLOG_LEVELS[level])(event, message=message, step=self.step, **details, **_CHECKED)

    def observe_docker_call(self, *, call: str, cli: str | None, seconds: float, error: BaseException | None) -> None:
        details: dict[str, Any] = {"call": call, "duration_ms": round(seconds * 1000, 1)}
        if cli:
            details["cli"] = cli
        if isinstance(error, DockerNotFound):
            # A lookup of something that does not exist yet is routine, not a failure.
            self.log("DEBUG", f"Docker {call}: not found ({details['duration_ms']} ms)", event="docker.call", **details)
        elif error is None:
            self.log("DEBUG", f"Docker {call} took {details['duration_ms']} ms", event="docker.call", **details)
        else:
            details["error"] = str(error)
            level = "WARNING" if isinstance(error, EngineUnavailable) else "INFO"
            self.log(level, f"Docker {call} failed after {details['duration_ms']} ms: {error}", event="docker.call", **details)

    def take_logs(self) -> list[NewLog]:
        logs, self._pending_logs = self._pending_logs, []
        return logs

    # Progress and state

    async def begin_step(self, step: str, message: str, *, progress: int | None = None) -> None:
        """Start a named step: check for cancellation, log it and show it in `message`."""
        await self.check_cancel()
        self.step = step
        self.log("INFO", message, event="operation.step")
        await self.report(progress=progress, message=message)

    async def report(self, *, progress: int | None = None, message: str | None = None) -> None:
        """Set progress and message; progress never goes down.

        They are written with the buffered log rows once `REPORT_INTERVAL` has passed since
        the last write; the reactor flushes what is still due in between.
        """
        if progress is not None:
            progress = max(self.progress_value, min(100, int(progress)))
            if progress != self.progress_value:
                self.progress_value = progress
                self._pending_values["progress"] = progress
        if message is not None:
            self._pending_values["message"] = message
        if time.monotonic() - self._last_write >= REPORT_INTERVAL:
            await self.flush()

    async def save_journal(self, **entries: Any) -> None:
        """Record finished steps in `result.journal`, durably, before going on."""
        self.note_journal(**entries)
        await self.flush()

    def note_journal(self, **entries: Any) -> None:
        """Record finished steps in `result.journal` with the next write, not at once.

        Only for steps that a resumed claim also finds on the engine, so that losing the
        entry in a crash is safe.
        """
        self.journal.update(entries)
        self._pending_values["result"] = self.result

    def flush_due(self) -> bool:
        """Tell whether something waits to be written and its interval has passed."""
        waiting = bool(self._pending_values or self._pending_logs)
        return waiting and time.monotonic() - self._last_write >= REPORT_INTERVAL

    async def flush(self) -> None:
        """Write pending progress, message, result and log rows now.

        When the write fails (a locked database, say), they wait for the next one instead.
        """
        # One flush at a time: the reactor's and the operation's own could otherwise commit
        # newer rows first while the older ones wait out a locked database.
        async with self._flush_lock:
            values, self._pending_values = self._pending_values, {}
            logs = self.take_logs()
            if not values and not logs:
                return
            self._last_write = time.monotonic()
            try:
                held = await self.store.update(self.row.id, self.attempt, logs=logs, **values)
            except Exception:
                # Newer values set meanwhile win; the rows go back in front of newer ones.
                self._pending_values = {**values, **self._pending_values}
                self._pending_logs[:0] = logs
                raise
        if not held:
            raise LostClaim(f"operation {self.row.id}: claim {self.attempt} is no longer held")

    @property
    def cancel_requested(self) -> bool:
        return self.row.id in self.services.cancelled

    async def check_cancel(self) -> None:
        """Raise `CancelledByRequest` if a user asked to cancel (checked at step boundaries)."""
        if self.cancel_requested:
            raise CancelledByRequest(f"cancelled at the request of a user during step {self.step}")


class StepTimer:
    """Measure a step's duration for its log line."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)
