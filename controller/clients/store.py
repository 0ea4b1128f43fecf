"""The asynchronous face of the database: each call runs in a worker thread.

The event loop never waits on a database call. On SQLite one thread at a time writes (the
file has a single writer anyway, and queueing here is cheaper than on the busy handler); on
PostgreSQL several calls run at once.

Writes of claimed rows (progress, log rows, finishes) are committed in groups: the first
caller takes every write queued so far to a worker thread and commits them in one
transaction, while the writes that arrive meanwhile wait for the next group. Each caller
still learns whether its own claim held.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from typing import Any, Callable, Sequence, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from sqlalchemy.exc import OperationalError

from controller.clients.database import ClaimedWrite, Database, LogRow, NewLog, OperationRow
from controller.errors import TransientError

T = TypeVar("T")


class _Queued:
    """A claimed write waiting for its group's commit."""

    __slots__ = ("write", "settled", "done", "held", "error")

    def __init__(self, write: ClaimedWrite) -> None:
        self.write = write
        self.settled = False
        # Made only for a caller that waits on another caller's group.
        self.done: anyio.Event | None = None
        self.held = False
        self.error: BaseException | None = None

    def settle(self) -> None:
        self.settled = True
        if self.done is not None:
            self.done.set()


class Store:
    """Named database operations, awaited from the reactor."""

    def __init__(self, database: Database) -> None:
        self.database = database
        capacity = 1 if database.dialect == "sqlite" else 8
        self._limiter = anyio.CapacityLimiter(capacity)
        self._queued: list[_Queued] = []
        self._committing = False

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(function, *args, **kwargs)
        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except OperationalError as exc:
            # Locked or unreachable database: the caller retries later.
            raise TransientError(f"database call {function.__name__} failed: {exc.orig}") from exc

    async def claim(self, *, host: str, instance_id: str, limit: int) -> list[OperationRow]:
        """Cancel the pending rows whose cancellation was requested, then claim up to `limit` rows.

        Both run in one trip to the worker thread, since the claim loop does both every turn.
        """

        def cancel_then_claim() -> list[OperationRow]:
            self.database.cancel_pending(host=host)
            return self.database.claim(host=host, instance_id=instance_id, limit=limit)

        cancel_then_claim.__name__ = "claim"
        return await self._run(cancel_then_claim)

    async def heartbeat(self, claims: Sequence[tuple[int, int]]) -> dict[int, bool]:
        return await self._run(self.database.heartbeat, list(claims))

    async def update(self, op_id: int, attempt: int, *, logs: Sequence[NewLog] = (), **values: Any) -> bool:
        """Write progress, message or result of a claimed row with its log rows; False when the claim was lost."""
        return await self._write_claimed(ClaimedWrite(op_id, attempt, Database.update_values(**values), tuple(logs)))

    async def finish(self, op_id: int, attempt: int, *, logs: Sequence[NewLog] = (), **kwargs: Any) -> bool:
        """Move a claimed row to a terminal status; False when the claim was lost."""
        return await self._write_claimed(ClaimedWrite(op_id, attempt, Database.finish_values(**kwargs), tuple(logs)))

    async def release(self, op_id: int, attempt: int, *, logs: Sequence[NewLog] = (), **kwargs: Any) -> bool:
        """Give a claimed row back to `pending` with its journal; False when the claim was lost."""
        return await self._write_claimed(ClaimedWrite(op_id, attempt, Database.release_values(**kwargs), tuple(logs)))

    async def _write_claimed(self, write: ClaimedWrite) -> bool:
        queued = _Queued(write)
        self._queued.append(queued)
        if not self._committing:
            # Shielded: the writes of other operations ride on this group.
            with anyio.CancelScope(shield=True):
                await self._commit_queued()
        if not queued.settled:
            queued.done = anyio.Event()
            await queued.done.wait()
        if queued.error is not None:
            raise queued.error
        return queued.held

    async def _commit_queued(self) -> None:
        """Commit queued writes, a group at a time, until none is left."""
        self._committing = True
        try:
            while self._queued:
                group, self._queued = self._queued, []
                await self._commit_group(group)
        finally:
            self._committing = False

    async def _commit_group(self, group: list[_Queued]) -> None:
        try:
            held = await self._run(self.database.write_claimed, [queued.write for queued in group])
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if len(group) > 1 and not isinstance(exc, TransientError):
                # One bad write must not fail the others: commit each on its own. A locked
                # database fails them all alike, and one by one each would wait its own timeout.
                for queued in group:
                    await self._commit_group([queued])
                return
            for queued in group:
                queued.error = exc
                queued.settle()
            return
        for queued, ok in zip(group, held):
            queued.held = ok
            queued.settle()

    async def add_logs(self, logs: Sequence[NewLog]) -> None:
        await self._run(self.database.add_logs, list(logs))

    async def note_pending(self, *, host: str, message: str) -> int:
        return await self._run(self.database.note_pending, host=host, message=message)

    async def cancel_flags(self, op_ids: Sequence[int]) -> set[int]:
        return await self._run(self.database.cancel_flags, list(op_ids))

    async def cancel_requested(self, op_id: int) -> bool:
        return await self._run(self.database.cancel_requested, op_id)

    async def cancel_pending(self, *, host: str) -> list[int]:
        return await self._run(self.database.cancel_pending, host=host)

    async def in_progress(self, *, host: str, stale_before: Any) -> list[OperationRow]:
        return await self._run(self.database.in_progress, host=host, stale_before=stale_before)

    async def rescue(self, row: OperationRow, *, fail: bool, message: str) -> bool:
        return await self._run(self.database.rescue, row, fail=fail, message=message)

    async def delete_logs_before(self, cutoff: Any) -> int:
        return await self._run(self.database.delete_logs_before, cutoff)

    async def insert(self, **values: Any) -> int:
        return await self._run(self.database.insert, **values)

    async def get(self, op_id: int) -> OperationRow | None:
        return await self._run(self.database.get, op_id)

    async def logs(self, op_id: int, **kwargs: Any) -> list[LogRow]:
        return await self._run(self.database.logs, op_id, **kwargs)

    async def pending_stats(self, *, host: str) -> tuple[int, int, Any]:
        return await self._run(self.database.pending_stats, host=host)


class SqliteChangeWatcher:
    """Notice commits made by other processes to a SQLite file, cheaply.

    `PRAGMA data_version` changes whenever another connection commits; reading it touches
    only the WAL index in shared memory, so checking it every few milliseconds costs almost
    nothing and never takes the write lock.
    """

    def __init__(self, path: str, *, host: str | None = None) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._limiter = anyio.CapacityLimiter(1)
        # Held while the connection runs a statement. The polling thread outlives a cancelled
        # `watch`, and closing a sqlite3 connection while another thread steps one of its
        # statements crashes the interpreter, so `close` waits for the statement to end.
        self._guard = threading.Lock()
        self._closed = False
        self._version = self._read_version()
        self._host = host

    def _read_version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def _changed(self) -> bool:
        with self._guard:
            if self._closed:
                raise sqlite3.ProgrammingError("the change watcher is closed")
            return self._changed_locked()

    def _changed_locked(self) -> bool:
        version = self._read_version()
        if version == self._version:
            return False
        self._version = version
        if self._host is None:
            return True
        # The controller's own progress writes come from other connections too. Each one
        # would wake the claim loop for nothing, and its claim would queue before the next
        # progress write, so only a commit that leaves a pending row of the host counts.
        pending = self._connection.execute(
            "SELECT 1 FROM docker_operations WHERE status = 'pending' AND host = ? LIMIT 1", (self._host,)
        )
        return pending.fetchone() is not None

    async def changed(self) -> bool:
        """Return True when another connection committed since the last call.

        With a `host`, only when a pending row of that host exists after the commit.
        """
        return await anyio.to_thread.run_sync(self._changed, limiter=self._limiter)

    async def watch(self, on_change: Callable[[], None], *, interval: float) -> None:
        """Call `on_change` on the event loop after each commit that `changed` reports.

        The check runs in one worker thread that sleeps `interval` seconds between reads, so
        an idle daemon pays one cheap read per interval and no event-loop wake-ups.
        """
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(interval):
                try:
                    changed = self._changed()
                except sqlite3.Error:
                    return  # closed at shutdown; the poll interval still covers a live daemon
                if changed:
                    try:
                        anyio.from_thread.run_sync(on_change)
                    except RuntimeError:
                        return  # the event loop is gone

        try:
            await anyio.to_thread.run_sync(poll, limiter=self._limiter, abandon_on_cancel=True)
        finally:
            stop.set()

    def close(self) -> None:
        with self._guard:
            self._closed = True
            self._connection.close()


def sqlite_path(url: str) -> str | None:
    """Return the file path of a `sqlite:///PATH` URL, or None for other databases and memory."""
    if not url.startswith("sqlite"):
        return None
    _, _, path = url.partition(":///")
    if not path or path == ":memory:":
        return None
    # The real path, so a second daemon that reaches the file through a symlink takes the same lock.
    return os.path.realpath(path.split("?", 1)[0])
