"""OperationContext's buffered reporting, with a stub store that records or fails writes.

The stub replaces only the database; the tests check the context's own rules.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
import pytest

from controller.clients.database import OperationRow
from controller.config import Settings
from controller.errors import TransientError
from controller.logs import configure_logging, get_logger
from controller.operations.context import OperationContext, Services
from controller.specs.row import OperationRequest

ROW = OperationRow(
    id=7, type="start", container="web", image="busybox", spec=None, options=None, host="local",
    priority=0, status="in_progress", progress=0, message=None, error=None, result=None,
    attempts=1, parent_id=None, cancel_requested=False, claimed_by="test", heartbeat_at=None,
    created_at=datetime(2026, 1, 1), updated_at=None, started_at=None, finished_at=None,
)
REQUEST = OperationRequest(type="start", container="web", image="busybox", spec=None)


class FlakyStore:
    """Fails the first `failures` writes with TransientError, then records them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.writes: list[dict[str, Any]] = []

    async def update(self, op_id: int, attempt: int, *, logs: Any = (), **values: Any) -> bool:
        if self.failures:
            self.failures -= 1
            raise TransientError("database call write_claimed failed: database is locked")
        self.writes.append({"logs": [log.message for log in logs], **values})
        return True


def context(store: Any, row: OperationRow = ROW) -> OperationContext:
    services = Services(store=store, docker=None, settings=Settings())  # type: ignore[arg-type]
    return OperationContext(row, REQUEST, services)


def test_failed_flush_keeps_rows_and_values() -> None:
    store = FlakyStore(failures=1)
    ctx = context(store)

    async def scenario() -> None:
        ctx.log("INFO", "first")
        await ctx.report(progress=10, message="one")
        with pytest.raises(TransientError):
            await ctx.flush()
        ctx.log("INFO", "second")
        await ctx.report(message="two")
        await ctx.flush()

    anyio.run(scenario)

    assert store.writes == [{"logs": ["first", "second"], "progress": 10, "message": "two"}]


def test_text_progress_counts_as_zero() -> None:
    ctx = context(FlakyStore(failures=0), replace(ROW, progress="50%"))  # type: ignore[arg-type]

    anyio.run(lambda: ctx.report(progress=5))

    assert ctx.progress_value == 5


def test_closed_log_stream_is_ignored() -> None:
    """Fails by raising BrokenPipeError from a log call."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    saved = sys.stderr
    try:
        sys.stderr = stream
        configure_logging(log_format="json", level="INFO")
        os.close(read_end)
        logger = get_logger(operation_id=1)
        logger.info("operation.step", message="after the reader went away")
        logger.error("operation.step", message="and an error")
    finally:
        sys.stderr = saved
        configure_logging(log_format="json", level="WARNING")
        try:
            stream.close()
        except OSError:
            pass


class SlowFailingStore(FlakyStore):
    """Fails its first write only after `release` is set, like a database locked for a while."""

    def __init__(self) -> None:
        super().__init__(failures=1)
        self.release = anyio.Event()

    async def update(self, op_id: int, attempt: int, *, logs: Any = (), **values: Any) -> bool:
        if self.failures:
            await self.release.wait()
        return await super().update(op_id, attempt, logs=logs, **values)


def test_concurrent_flushes_keep_row_order() -> None:
    store = SlowFailingStore()
    ctx = context(store)

    async def first_flush() -> None:
        with pytest.raises(TransientError):
            await ctx.flush()

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            ctx.log("INFO", "older")
            group.start_soon(first_flush)
            await anyio.sleep(0.05)
            ctx.log("INFO", "newer")
            group.start_soon(ctx.flush)
            await anyio.sleep(0.05)
            store.release.set()

    anyio.run(scenario)

    assert store.writes == [{"logs": ["older", "newer"]}]
