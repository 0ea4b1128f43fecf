"""The reconcile loop: claim pending rows and carry them out with bounded concurrency.

The loop wakes on whichever comes first: a change notification (another process committed
to the SQLite file), a finished operation freeing a slot, the poll interval, or shutdown.
Beside it run the heartbeats of the claims it holds, the stale sweep, the log retention
cleanup and, while the engine is unreachable, a probe that resumes claiming once it responds.

Shutdown (SIGTERM or SIGINT): stop claiming, give running operations `shutdown_grace`
seconds to finish, then cancel them; each returns its row to `pending` with its journal. A
second signal cancels them at once.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from controller.clients.database import Database, OperationRow, stale_cutoff, utc_now
from controller.clients.docker import DockerClient
from controller.clients.docker_config import load_credentials
from controller.clients.registry import RegistryClient
from controller.clients.store import SqliteChangeWatcher, Store, sqlite_path
from controller.config import Settings
from controller.errors import TransientError
from controller.logs import get_logger
from controller.operations.context import REPORT_INTERVAL, LostClaim, OperationContext, Services, current_operation
from controller.reactor.executor import execute
from controller.reactor.lock import InstanceLock
from controller.specs.row import MAX_ATTEMPTS_LIMIT

CHANGE_CHECK_INTERVAL = 0.01  # seconds between `PRAGMA data_version` checks
CANCEL_CHECK_INTERVAL = 1.0  # seconds between reads of `cancel_requested` of running rows
ENGINE_PROBE_MAX = 30.0  # seconds, the longest wait between engine probes
DEFAULT_MAX_ATTEMPTS = 5
REGISTRY_RETRIES = 2  # in-place retries of one registry request, before the operation's own


@dataclass
class Running:
    """A claim this controller holds."""

    row: OperationRow
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ctx: OperationContext | None = None
    # Set when its task has ended, whatever the outcome.
    ended: anyio.Event = field(default_factory=anyio.Event)
    # The earlier claim of the same row still winding down, which this one waits for.
    earlier: "Running | None" = None


def _route_docker_call(**kwargs: Any) -> None:
    ctx = current_operation.get()
    if ctx is not None:
        ctx.observe_docker_call(**kwargs)


def _route_registry_request(registry: str, kind: str, status: int) -> None:
    ctx = current_operation.get()
    if ctx is not None:
        outcome = f"HTTP {status}" if status else "no response"
        ctx.log("DEBUG", f"Registry {registry} {kind} request: {outcome}", event="registry.request",
                registry=registry, kind=kind, status=status)


def _engine_waits(row: OperationRow) -> int:
    """Return how many claims of the row ended waiting for the engine; they do not count."""
    value = row.result_data().get("engine_waits", 0)
    return value if isinstance(value, int) and value >= 0 else 0


def _max_attempts(row: OperationRow) -> int:
    try:
        value = json.loads(row.options or "{}").get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    except (ValueError, AttributeError):
        return DEFAULT_MAX_ATTEMPTS
    if isinstance(value, int) and 1 <= value <= MAX_ATTEMPTS_LIMIT:
        return value
    return DEFAULT_MAX_ATTEMPTS


class Controller:
    """One controller instance serving the rows of `settings.host`."""

    def __init__(self, settings: Settings, *, docker: DockerClient | None = None) -> None:
        self.settings = settings
        self.log = get_logger(instance=settings.instance_id, host=settings.host)
        self.database = Database(settings.database_url)
        self.store = Store(self.database)
        self.docker = docker or DockerClient(base_url=settings.docker_host, timeout=settings.docker_timeout)
        if self.docker.observer is None:
            # Each Docker call is logged on the operation whose task made it.
            self.docker.observer = _route_docker_call
        config_path = Path(settings.docker_config) if settings.docker_config else None
        # One client for all operations, so connections and Bearer tokens are reused. Two
        # retries in place are enough, because the reactor retries the whole operation.
        self.registry = RegistryClient(
            credentials_for=lambda registry: load_credentials(config_path, registry),
            max_retries=REGISTRY_RETRIES,
            on_request=_route_registry_request,
        )
        self.services = Services(store=self.store, docker=self.docker, settings=settings, registry=self.registry)
        self.running: dict[int, Running] = {}
        self.stopping = False
        self.engine_down: str | None = None
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._lock: InstanceLock | None = None
        self._watcher: SqliteChangeWatcher | None = None
        self._path = sqlite_path(settings.database_url)

    def wake(self) -> None:
        self._wake.set()

    # Start and stop

    def acquire(self) -> None:
        """Take the one-controller lock of a SQLite file; raises `AlreadyRunning`."""
        if self._path is not None:
            self._lock = InstanceLock(self._path)
            self._lock.acquire()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        if self._lock is not None:
            self._lock.release()
        self.database.close()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until SIGTERM or SIGINT (or until the task is cancelled)."""
        self.log.info("controller.starting", message="Controller starting", settings=self.settings.redacted())
        if self._path is not None:
            self._watcher = SqliteChangeWatcher(self._path, host=self.settings.host)
            # The file lock proves no other controller runs on this file: every in-progress
            # row of this host belongs to a controller that died.
            await self._rescue(stale_before=None)
        else:
            await self._rescue(stale_before=stale_cutoff(self.settings.stale_after))

        if not await self.docker.ping():
            self._engine_lost(f"Docker engine at {self.docker.endpoint()} does not answer")

        async with anyio.create_task_group() as services:
            services.start_soon(self._handle_signals, services)
            services.start_soon(self._heartbeats)
            services.start_soon(self._sweeps)
            if self._watcher is not None:
                services.start_soon(self._watch_changes)
            self.log.info("controller.ready", message=f"Controller ready; serving host {self.settings.host}")
            task_status.started()
            await self._claim_loop()
            services.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await self.registry.aclose()
        self.log.info("controller.stopped", message="Controller stopped")

    async def _handle_signals(self, services: TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self.stopping:
                    self.log.info(
                        "controller.stopping",
                        message=f"{name} received: no new claims; running operations get "
                        f"{self.settings.shutdown_grace:.0f} s to finish",
                        running=len(self.running),
                    )
                    self.stopping = True
                    self.wake()
                else:
                    self.log.warning("controller.stopping", message=f"second {name}: cancelling running operations now")
                    for running in list(self.running.values()):
                        running.scope.cancel()

    # Claiming

    async def _claim_loop(self) -> None:
        async with anyio.create_task_group() as workers:
            while not self.stopping:
                self._wake = anyio.Event()
                claimed = await self._claim_once(workers)
                if self.stopping:
                    break
                free = self.settings.concurrency - len(self.running)
                if claimed and free > 0:
                    continue  # there may be more pending rows
                with anyio.move_on_after(self.settings.poll_interval):
                    await self._wake.wait()

            await self._drain(workers)

    async def _claim_once(self, workers: TaskGroup) -> int:
        try:
            free = self.settings.concurrency - len(self.running)
            if self.engine_down or free <= 0:
                await self.store.cancel_pending(host=self.settings.host)
            if self.engine_down:
                # Rows waiting for the engine show why in `message`, for a UI that reads only the table.
                await self.store.note_pending(host=self.settings.host, message=f"waiting for the Docker engine: {self.engine_down}")
                return 0
            if free <= 0:
                return 0
            # The claim cancels requested rows first, in the same trip to the database thread.
            rows = await self.store.claim(
                host=self.settings.host, instance_id=self.settings.instance_id, limit=free
            )
        except TransientError as exc:
            self.log.warning("controller.claim_failed", message=f"{exc}; trying again at the next wake-up")
            return 0

        for row in rows:
            earlier = self.running.get(row.id)
            if earlier is not None:
                # Someone outside set a row we run back to pending: this new claim fences the
                # earlier one out, so stop the earlier task instead of running the row twice.
                self.log.warning(
                    "operation.lost",
                    operation_id=row.id,
                    message=f"row was set back to pending while claim {earlier.row.attempts} ran; "
                    f"stopping that claim and carrying on with claim {row.attempts}",
                )
                self._stop_lost(earlier)
            running = Running(row, earlier=earlier)
            self.running[row.id] = running
            if self._idle.is_set():
                self._idle = anyio.Event()
            workers.start_soon(self._execute, running)
        return len(rows)

    async def _execute(self, running: Running) -> None:
        row = running.row
        try:
            with running.scope:
                if running.earlier is not None:
                    # A Docker call of the cancelled claim may still be in its worker thread.
                    # NOTE: an abandoned pull thread is not awaited: it stops at its next
                    # progress event, so this claim may start a second pull before then.
                    await running.earlier.ended.wait()
                    running.earlier = None
                await execute(
                    row, self.services, on_engine_down=self._engine_lost, on_context=lambda ctx: setattr(running, "ctx", ctx)
                )
        except Exception as exc:  # noqa: BLE001 - never let one operation stop the controller
            self.log.error("operation.crashed", operation_id=row.id, message=f"unhandled error: {exc!r}")
        finally:
            running.ended.set()
            self.services.lost_claims.discard((row.id, row.attempts))
            if self.running.get(row.id) is running:
                del self.running[row.id]
                self.services.cancelled.discard(row.id)
            if not self.running:
                self._idle.set()
            self.wake()

    def _stop_lost(self, running: Running) -> None:
        """Cancel an operation whose claim another claim replaced; it stops without writing the row."""
        self.services.lost_claims.add((running.row.id, running.row.attempts))
        running.scope.cancel()

    async def _drain(self, workers: TaskGroup) -> None:
        if not self.running:
            return
        with anyio.move_on_after(self.settings.shutdown_grace):
            await self._idle.wait()
        if self.running:
            self.log.warning(
                "controller.stopping",
                message=f"{len(self.running)} operations still running after the grace period; "
                "returning them to pending",
            )
            workers.cancel_scope.cancel()

    # Engine availability

    def _engine_lost(self, reason: str) -> None:
        """Pause claiming until the engine responds again; `_sweeps` runs the probe."""
        if self.engine_down is None:
            self.engine_down = reason
            self.log.warning("engine.unreachable", message=f"{reason}; claiming paused until the engine responds")

    async def _probe_engine(self) -> None:
        delay = 1.0
        while self.engine_down and not self.stopping:
            await anyio.sleep(delay)
            if await self.docker.ping():
                self.log.info("engine.reachable", message="Docker engine responds again; claiming resumed")
                self.engine_down = None
                self.wake()
                return
            delay = min(ENGINE_PROBE_MAX, delay * 2)
            self.log.info("engine.unreachable", message=f"Docker engine still unreachable; next check in {delay:.0f} s")

    # Background duties

    async def _watch_changes(self) -> None:
        assert self._watcher is not None
        try:
            await self._watcher.watch(self.wake, interval=CHANGE_CHECK_INTERVAL)
        except Exception as exc:  # noqa: BLE001 - the poll interval still covers us
            self.log.warning("controller.watch_failed", message=f"change watch failed: {exc}; polling only")

    async def _flush_reports(self) -> None:
        """Write the progress and log rows that operations left waiting in memory."""
        for op_id, running in list(self.running.items()):
            if running.ctx is None or not running.ctx.flush_due():
                continue
            try:
                await running.ctx.flush()
            except LostClaim:
                self.log.warning("operation.lost", operation_id=op_id, message="claim lost; stopping the operation")
                self._stop_lost(running)
            except TransientError:
                raise  # the caller retries the flush in a second
            except Exception as exc:  # noqa: BLE001 - one operation's failed write must not stop the others
                self.log.error(
                    "operation.write_failed",
                    operation_id=op_id,
                    message=f"writing the operation's progress failed: {exc}; stopping the operation",
                )
                self._stop_lost(running)

    async def _heartbeats(self) -> None:
        interval = max(1.0, min(30.0, self.settings.stale_after / 5))
        since_heartbeat = 0.0
        since_cancel_check = 0.0
        while True:
            await anyio.sleep(REPORT_INTERVAL)
            since_heartbeat += REPORT_INTERVAL
            since_cancel_check += REPORT_INTERVAL
            if not self.running:
                continue
            try:
                await self._flush_reports()
                if since_cancel_check < CANCEL_CHECK_INTERVAL:
                    continue
                since_cancel_check = 0.0
                if since_heartbeat >= interval:
                    since_heartbeat = 0.0
                    claims = [(op_id, r.row.attempts) for op_id, r in self.running.items()]
                    held = await self.store.heartbeat(claims)
                    for op_id, _ in claims:
                        if op_id not in held and op_id in self.running:
                            self.log.warning("operation.lost", operation_id=op_id, message="claim lost; stopping the operation")
                            self._stop_lost(self.running[op_id])
                flagged = await self.store.cancel_flags(list(self.running))
            except TransientError as exc:
                self.log.warning("controller.heartbeat_failed", message=f"{exc}; retrying in {CANCEL_CHECK_INTERVAL:.0f} s")
                continue
            # Operations see the flag at their next step boundary; a pull checks it as it runs.
            self.services.cancelled.update(flagged)

    async def _sweeps(self) -> None:
        last_sweep = anyio.current_time()
        while True:
            if self.engine_down:
                await self._probe_engine()
            await anyio.sleep(0.5)
            if anyio.current_time() - last_sweep < self.settings.sweep_interval:
                continue
            last_sweep = anyio.current_time()
            try:
                await self._rescue(stale_before=stale_cutoff(self.settings.stale_after))
                await self.cleanup_logs()
            except TransientError as exc:
                self.log.warning("controller.sweep_failed", message=f"{exc}; next sweep in {self.settings.sweep_interval:.0f} s")

    async def _rescue(self, *, stale_before: Any) -> None:
        """Return stale in-progress rows to pending, or fail those with no attempts left."""
        rows = await self.store.in_progress(host=self.settings.host, stale_before=stale_before)
        for row in rows:
            if row.id in self.running:
                continue
            last = row.heartbeat_at.isoformat(sep=" ", timespec="seconds") if row.heartbeat_at else "never"
            # A row set to in_progress by hand names no controller.
            if row.claimed_by:
                why = f"controller {row.claimed_by} stopped heartbeating (last heartbeat {last})"
            else:
                why = f"in progress with no controller in claimed_by (last heartbeat {last})"
            if row.attempts - _engine_waits(row) >= _max_attempts(row):
                message = f"went stale: {why} and all {row.attempts} attempts are used"
                fail = True
            else:
                message = f"rescued: {why}; resuming from its journal"
                fail = False
            if await self.store.rescue(row, fail=fail, message=message):
                self.log.warning("operation.stale", operation_id=row.id, type=row.type, container=row.container, message=message)
        if rows:
            self.wake()

    async def cleanup_logs(self) -> int:
        cutoff = utc_now() - timedelta(days=self.settings.log_retention_days)
        deleted = await self.store.delete_logs_before(cutoff)
        if deleted:
            self.log.info("logs.cleaned", message=f"Deleted {deleted} log rows of operations finished before {cutoff:%Y-%m-%d %H:%M}")
        return deleted
