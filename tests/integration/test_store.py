"""The asynchronous store on a real SQLite file: claimed writes committed in groups.

Writes that arrive while a group commits wait for the next group, so many operations share
one transaction. Each caller still learns whether its own claim held, and one write that
fails does not fail the others of its group.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy.exc import OperationalError

from controller.clients import migrate
from controller.clients.database import Database, NewLog
from controller.clients.store import SqliteChangeWatcher, Store
from controller.errors import TransientError

pytestmark = pytest.mark.anyio

HOST = "local"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'dockwright.db'}")
    migrate.upgrade(database.engine)
    yield database
    database.close()


class CountingDatabase:
    """The real `Database`, counting the transactions of `write_claimed`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.groups: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.database, name)

    def write_claimed(self, writes: list[Any]) -> list[bool]:
        self.groups.append(len(writes))
        return self.database.write_claimed(writes)


def insert_rows(database: Database, count: int) -> None:
    path = database.url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO docker_operations (type, container, image) VALUES ('start', ?, 'a')",
            [(f"c{index}",) for index in range(count)],
        )
    connection.close()


def table(database: Database, statement: str) -> list[tuple[Any, ...]]:
    path = database.url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    try:
        return connection.execute(statement).fetchall()
    finally:
        connection.close()


async def test_concurrent_finishes_share_transactions(database: Database) -> None:
    insert_rows(database, 8)
    counting = CountingDatabase(database)
    store = Store(counting)  # type: ignore[arg-type]
    rows = await store.claim(host=HOST, instance_id="test", limit=8)
    outcomes: dict[int, bool] = {}

    async def finish(row: Any) -> None:
        log = NewLog(row.id, "INFO", f"finished {row.id}")
        outcomes[row.id] = await store.finish(row.id, row.attempts, status="completed", message="done", logs=[log])

    async with anyio.create_task_group() as group:
        for row in rows:
            group.start_soon(finish, row)
    statuses = table(database, "SELECT status, count(*) FROM docker_operations GROUP BY status")
    logs = table(database, "SELECT count(*) FROM docker_operation_logs")

    assert len(rows) == 8
    assert outcomes == {row.id: True for row in rows}
    assert statuses == [("completed", 8)]
    assert logs == [(8,)]
    assert sum(counting.groups) == 8
    assert len(counting.groups) < 8


async def test_lost_claim_in_group_reports_false(database: Database) -> None:
    insert_rows(database, 2)
    store = Store(database)
    kept, lost = await store.claim(host=HOST, instance_id="test", limit=2)
    results: dict[str, bool] = {}

    async def write(name: str, op_id: int, attempt: int) -> None:
        results[name] = await store.update(op_id, attempt, progress=50)

    async with anyio.create_task_group() as group:
        group.start_soon(write, "kept", kept.id, kept.attempts)
        group.start_soon(write, "lost", lost.id, lost.attempts + 1)
    progress = dict(table(database, "SELECT id, progress FROM docker_operations"))

    assert results == {"kept": True, "lost": False}
    assert progress[kept.id] == 50
    assert progress[lost.id] == 0


async def test_failing_write_spares_its_group(database: Database) -> None:
    insert_rows(database, 3)
    counting = CountingDatabase(database)
    store = Store(counting)  # type: ignore[arg-type]
    first, good, bad = await store.claim(host=HOST, instance_id="test", limit=3)
    outcomes: dict[str, Any] = {}

    async def write(name: str, op_id: int, attempt: int, values: dict[str, Any]) -> None:
        try:
            outcomes[name] = await store.update(op_id, attempt, **values)
        except Exception as exc:  # noqa: BLE001 - the test records which write failed
            outcomes[name] = exc

    # The first write commits alone; the other two queue meanwhile and form the next group.
    async with anyio.create_task_group() as group:
        group.start_soon(write, "first", first.id, first.attempts, {"message": "first"})
        group.start_soon(write, "good", good.id, good.attempts, {"message": "fine"})
        # No such column: building this write's statement fails.
        group.start_soon(write, "bad", bad.id, bad.attempts, {"no_such_column": 1})
    messages = dict(table(database, "SELECT id, message FROM docker_operations"))

    assert counting.groups == [1, 2, 1, 1]
    assert outcomes["first"] is True
    assert outcomes["good"] is True
    assert isinstance(outcomes["bad"], Exception)
    assert "no_such_column" in str(outcomes["bad"])
    assert messages[good.id] == "fine"
    assert messages[bad.id] is None


async def test_watcher_close_waits_for_query(database: Database) -> None:
    path = database.url.removeprefix("sqlite:///")
    watcher = SqliteChangeWatcher(path, host=HOST)
    query_started = threading.Event()
    release_query = threading.Event()
    real_query = watcher._changed_locked

    def slow_query() -> bool:
        query_started.set()
        release_query.wait(5)
        return real_query()

    watcher._changed_locked = slow_query  # type: ignore[method-assign]
    poller = threading.Thread(target=watcher._changed)
    closer = threading.Thread(target=watcher.close)
    poller.start()
    query_started.wait(5)
    closer.start()
    closer.join(0.2)
    closed_during_query = not closer.is_alive()
    release_query.set()
    poller.join(5)
    closer.join(5)

    assert closed_during_query is False
    assert not closer.is_alive()
    with pytest.raises(sqlite3.ProgrammingError):
        watcher._changed()


class LockedDatabase(CountingDatabase):
    """The real `Database`, with `write_claimed` failing as on a database locked too long."""

    def write_claimed(self, writes: list[Any]) -> list[bool]:
        self.groups.append(len(writes))
        raise OperationalError("UPDATE docker_operations ...", {}, sqlite3.OperationalError("database is locked"))


async def test_locked_group_fails_without_retries(database: Database) -> None:
    insert_rows(database, 3)
    locked = LockedDatabase(database)
    store = Store(locked)  # type: ignore[arg-type]
    rows = await store.claim(host=HOST, instance_id="test", limit=3)
    outcomes: dict[int, Any] = {}

    async def write(row: Any) -> None:
        try:
            outcomes[row.id] = await store.update(row.id, row.attempts, progress=10)
        except TransientError as exc:
            outcomes[row.id] = exc

    async with anyio.create_task_group() as group:
        for row in rows:
            group.start_soon(write, row)

    # The first write commits alone, the next two as one group; none is retried alone.
    assert locked.groups == [1, 2]
    assert all(isinstance(outcome, TransientError) for outcome in outcomes.values())
    assert len(outcomes) == 3
