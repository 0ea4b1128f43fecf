"""The named database operations on real SQLite files: defaults, claim rules and fencing.

Rows are written with plain SQL through the standard library's sqlite3, as another service
would, and read back the same way, so the tests check the table contract and not only what
`Database` believes it wrote.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from controller.clients import migrate
from controller.clients.database import (
    _CANCEL_REQUESTED_ROWS,
    SQLITE_BUSY_TIMEOUT_MS,
    ClaimedWrite,
    Database,
    NewLog,
    utc_now,
)
from controller.clients.schema import CANCEL_INDEX

HOST = "local"
INSTANCE = "test-controller"


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "dockwright.db"


@pytest.fixture
def database(database_path: Path) -> Database:
    database = Database(f"sqlite:///{database_path}")
    migrate.upgrade(database.engine)
    yield database
    database.close()


def sql(path: Path, statement: str, *params: Any) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path, timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        with connection:
            return [dict(row) for row in connection.execute(statement, params)]
    finally:
        connection.close()


def insert(path: Path, **columns: Any) -> int:
    """Insert a row naming only the given columns, as another service would."""
    values = {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in columns.items()}
    connection = sqlite3.connect(path, timeout=10)
    try:
        with connection:
            cursor = connection.execute(
                f"INSERT INTO docker_operations ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
                list(values.values()),
            )
            return int(cursor.lastrowid)
    finally:
        connection.close()


def row(path: Path, op_id: int) -> dict[str, Any]:
    return sql(path, "SELECT * FROM docker_operations WHERE id = ?", op_id)[0]


def log_count(path: Path, op_id: int) -> int:
    return sql(path, "SELECT count(*) AS n FROM docker_operation_logs WHERE operation_id = ?", op_id)[0]["n"]


def claim_ids(database: Database, limit: int = 10, host: str = HOST) -> list[int]:
    return [claimed.id for claimed in database.claim(host=host, instance_id=INSTANCE, limit=limit)]


# Defaults of a raw insert


def test_raw_insert_gets_defaults(database: Database, database_path: Path) -> None:
    statements = [
        "INSERT INTO docker_operations (type, container, image, spec) VALUES ('start', 'web', "
        "'localhost:5001/demo/web:1', '{\"ports\": [\"127.0.0.1:18080:8080\"], \"environment\": {\"MODE\": \"demo\"}}')",
        "INSERT INTO docker_operations (type, container) VALUES ('recreate', 'web')",
        "INSERT INTO docker_operations (type, image, options) "
        "VALUES ('update_image', 'localhost:5001/demo/web:latest', '{\"recreate\": true}')",
    ]
    before = utc_now()
    for statement in statements:
        sql(database_path, statement)
    rows = sql(database_path, "SELECT * FROM docker_operations ORDER BY id")
    parsed = [database.get(raw["id"]) for raw in rows]

    for raw in rows:
        assert raw["status"] == "pending"
        assert raw["progress"] == 0
        assert raw["attempts"] == 0
        assert raw["host"] == "local"
        assert raw["priority"] == 0
        assert raw["cancel_requested"] == 0
        assert raw["created_at"] is not None
        assert raw["updated_at"] is not None
    for operation in parsed:
        # Within a second of the insert, so they are UTC (not local time) with correct fractions.
        assert abs(operation.created_at - before) < timedelta(seconds=1), operation.created_at
        assert abs(operation.updated_at - before) < timedelta(seconds=1), operation.updated_at
        assert operation.started_at is None
        assert operation.cancel_requested is False


# Claim order and limits


def test_claim_order_priority_then_age(database: Database, database_path: Path) -> None:
    low_old = insert(database_path, type="start", image="a", created_at="2026-01-01 00:00:00.000")
    high_new = insert(database_path, type="start", image="b", priority=5, created_at="2026-01-03 00:00:00.000")
    high_old = insert(database_path, type="start", image="c", priority=5, created_at="2026-01-02 00:00:00.000")
    low_same_time = insert(database_path, type="start", image="d", created_at="2026-01-01 00:00:00.000")

    assert claim_ids(database) == [high_old, high_new, low_old, low_same_time]


def test_claim_respects_limit(database: Database, database_path: Path) -> None:
    ids = [insert(database_path, type="start", image="a") for _ in range(5)]

    first = claim_ids(database, limit=2)
    second = claim_ids(database, limit=2)
    third = claim_ids(database, limit=2)
    none = claim_ids(database, limit=0)

    assert first == ids[:2]
    assert second == ids[2:4]
    assert third == ids[4:]
    assert none == []


def test_claim_sets_claim_columns(database: Database, database_path: Path) -> None:
    op_id = insert(database_path, type="start", image="a")

    claimed = database.claim(host=HOST, instance_id=INSTANCE, limit=1)[0]
    raw = row(database_path, op_id)

    assert claimed.status == "in_progress"
    assert claimed.attempts == 1
    assert raw["attempts"] == 1
    assert raw["claimed_by"] == INSTANCE
    assert raw["heartbeat_at"] is not None
    assert raw["started_at"] is not None


def test_claim_only_own_host(database: Database, database_path: Path) -> None:
    insert(database_path, type="start", image="a", host="other")
    own = insert(database_path, type="start", image="a")

    assert claim_ids(database) == [own]
    assert claim_ids(database, host="other") != []


def test_claim_skips_cancel_requested(database: Database, database_path: Path) -> None:
    insert(database_path, type="start", image="a", cancel_requested=1)

    assert claim_ids(database) == []


# One operation per container at a time


def test_one_operation_per_container(database: Database, database_path: Path) -> None:
    web_first = insert(database_path, type="start", container="web", image="a", created_at="2026-01-01 00:00:00.000")
    web_second = insert(
        database_path, type="recreate", container="web", priority=10, created_at="2026-01-02 00:00:00.000"
    )
    db_first = insert(database_path, type="start", container="db", image="a", created_at="2026-01-03 00:00:00.000")

    # The newer web row has the higher priority, yet the older pending one goes first.
    first_claim = claim_ids(database, limit=1)
    second_claim = claim_ids(database)
    while_running = claim_ids(database)
    database.finish(web_first, 1, status="completed", message="done")
    after_finish = claim_ids(database)

    assert first_claim == [web_first]
    assert second_claim == [db_first]
    assert while_running == []
    assert after_finish == [web_second]


def test_rows_without_container_run_together(database: Database, database_path: Path) -> None:
    first = insert(database_path, type="update_image", image="a")
    second = insert(database_path, type="update_image", image="a")

    assert claim_ids(database) == [first, second]


# Fencing by attempts


def _rescued_and_reclaimed(database: Database, database_path: Path) -> tuple[int, Any]:
    op_id = insert(database_path, type="start", image="a")
    first = database.claim(host=HOST, instance_id="first", limit=1)[0]
    assert database.rescue(first, fail=False, message="rescued")
    second = database.claim(host=HOST, instance_id="second", limit=1)[0]
    assert second.attempts == 2
    return op_id, first


def test_stale_writer_changes_nothing(database: Database, database_path: Path) -> None:
    op_id, stale = _rescued_and_reclaimed(database, database_path)
    before = row(database_path, op_id)
    stale_log = [NewLog(op_id, "INFO", "written by the stale claim")]

    updated = database.update(op_id, stale.attempts, logs=stale_log, progress=50, message="stale")
    finished = database.finish(op_id, stale.attempts, status="completed", message="stale", logs=stale_log)
    released = database.release(op_id, stale.attempts, message="stale", logs=stale_log)
    heartbeat = database.heartbeat([(op_id, stale.attempts)])
    rescued = database.rescue(stale, fail=True, message="stale")
    after = row(database_path, op_id)
    stale_logs = sql(database_path, "SELECT * FROM docker_operation_logs WHERE message = 'written by the stale claim'")

    assert updated is False
    assert finished is False
    assert released is False
    assert heartbeat == {}
    assert rescued is False
    assert after == before
    assert after["claimed_by"] == "second"
    assert stale_logs == []


def test_current_claim_writes(database: Database, database_path: Path) -> None:
    op_id, _ = _rescued_and_reclaimed(database, database_path)

    updated = database.update(op_id, 2, logs=[NewLog(op_id, "INFO", "step")], progress=50, message="halfway")
    heartbeat = database.heartbeat([(op_id, 2)])
    finished = database.finish(op_id, 2, status="completed", message="done", result={"outcome": "created"})
    after = row(database_path, op_id)

    assert updated is True
    assert heartbeat == {op_id: False}
    assert finished is True
    assert after["status"] == "completed"
    assert after["progress"] == 50
    assert json.loads(after["result"]) == {"outcome": "created"}
    assert after["finished_at"] is not None


def test_heartbeat_reports_cancel_request(database: Database, database_path: Path) -> None:
    op_id = insert(database_path, type="start", image="a")
    claimed = database.claim(host=HOST, instance_id=INSTANCE, limit=1)[0]
    database.request_cancel(op_id)

    assert database.heartbeat([(op_id, claimed.attempts)]) == {op_id: True}
    assert database.cancel_flags([op_id]) == {op_id}


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_terminal_row_never_changes(database: Database, database_path: Path, status: str) -> None:
    op_id = insert(database_path, type="start", image="a")
    claimed = database.claim(host=HOST, instance_id=INSTANCE, limit=1)[0]
    assert database.finish(op_id, claimed.attempts, status=status, message="final")
    before = row(database_path, op_id)

    writes = {
        "update": database.update(op_id, claimed.attempts, progress=10),
        "finish": database.finish(op_id, claimed.attempts, status="failed", message="again"),
        "release": database.release(op_id, claimed.attempts, message="again"),
        "rescue": database.rescue(claimed, fail=True, message="again"),
    }
    heartbeat = database.heartbeat([(op_id, claimed.attempts)])
    cancelled = database.request_cancel(op_id)
    reclaimed = claim_ids(database)
    after = row(database_path, op_id)

    assert writes == {"update": False, "finish": False, "release": False, "rescue": False}
    assert heartbeat == {}
    assert cancelled.cancel_requested is False
    assert reclaimed == []
    assert after == before


# Sweeps


def test_cancel_pending(database: Database, database_path: Path) -> None:
    requested = insert(database_path, type="start", image="a", cancel_requested=1)
    untouched = insert(database_path, type="start", image="a")
    other_host = insert(database_path, type="start", image="a", host="other", cancel_requested=1)
    running = insert(database_path, type="start", image="a", status="in_progress", attempts=1, cancel_requested=1)

    cancelled = database.cancel_pending(host=HOST)

    assert cancelled == [requested]
    assert row(database_path, requested)["status"] == "cancelled"
    assert row(database_path, requested)["finished_at"] is not None
    assert row(database_path, requested)["attempts"] == 0
    assert log_count(database_path, requested) == 1
    assert row(database_path, untouched)["status"] == "pending"
    assert row(database_path, other_host)["status"] == "pending"
    assert row(database_path, running)["status"] == "in_progress"


def test_delete_logs_before(database: Database, database_path: Path) -> None:
    cutoff = datetime(2026, 6, 1)
    old_terminal = insert(database_path, type="start", image="a", status="completed", finished_at="2026-05-01 00:00:00.000")
    old_failed = insert(database_path, type="start", image="a", status="failed", finished_at="2026-05-31 23:59:59.000")
    new_terminal = insert(database_path, type="start", image="a", status="cancelled", finished_at="2026-06-02 00:00:00.000")
    pending = insert(database_path, type="start", image="a", created_at="2026-01-01 00:00:00.000")
    running = insert(database_path, type="start", image="a", status="in_progress", started_at="2026-01-01 00:00:00.000")
    ids = [old_terminal, old_failed, new_terminal, pending, running]
    database.add_logs([NewLog(op_id, "INFO", "old step") for op_id in ids for _ in range(2)])
    sql(database_path, "UPDATE docker_operation_logs SET created_at = '2026-01-01 00:00:00.000'")

    deleted = database.delete_logs_before(cutoff)

    assert deleted == 4
    assert log_count(database_path, old_terminal) == 0
    assert log_count(database_path, old_failed) == 0
    assert log_count(database_path, new_terminal) == 2
    assert log_count(database_path, pending) == 2
    assert log_count(database_path, running) == 2


# Connections and concurrency


def test_sqlite_connection_settings(database: Database, database_path: Path) -> None:
    with database.engine.connect() as connection:
        journal_mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()

    assert journal_mode == "wal"
    assert busy_timeout == SQLITE_BUSY_TIMEOUT_MS
    assert foreign_keys == 1


def _claim_until_empty(url: str, instance_id: str, start: Any, results: Any) -> None:
    """Claim and finish rows until none are left; report the claimed ids or the error."""
    database = Database(url)
    claimed: list[int] = []
    try:
        start.wait()
        idle_rounds = 0
        while idle_rounds < 3:
            rows = database.claim(host=HOST, instance_id=instance_id, limit=3)
            if not rows:
                idle_rounds += 1
                continue
            idle_rounds = 0
            for claimed_row in rows:
                claimed.append(claimed_row.id)
                database.finish(claimed_row.id, claimed_row.attempts, status="completed", message=instance_id)
            # Stand in for the work between claims. Without a pause the busy handler's
            # sleeping writers rarely get the lock, and one worker would claim every row.
            time.sleep(0.005)
        results.put((instance_id, claimed, None))
    except Exception as exc:  # noqa: BLE001 - reported to the test process
        results.put((instance_id, claimed, repr(exc)))
    finally:
        database.close()


def test_concurrent_claims_never_overlap(database: Database, database_path: Path) -> None:
    total = 300
    ids = {insert(database_path, type="update_image", image="a") for _ in range(total)}
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)  # every worker starts claiming once all have started
    results = context.Queue()
    workers = [
        context.Process(target=_claim_until_empty, args=(f"sqlite:///{database_path}", f"worker-{n}", start, results))
        for n in range(start.parties)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    claimed = [op_id for _, worker_ids, _ in reports for op_id in worker_ids]
    errors = [error for _, _, error in reports if error]
    attempts = sql(database_path, "SELECT max(attempts) AS most FROM docker_operations")[0]["most"]
    busy_workers = [instance for instance, worker_ids, _ in reports if worker_ids]
    assert errors == []
    assert len(busy_workers) >= 2, reports
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == ids
    assert attempts == 1
    assert all(worker.exitcode == 0 for worker in workers)


def test_cancelled_row_with_journal_is_claimed(database: Database, database_path: Path) -> None:
    """A cancelled row that an earlier claim left half done is claimed again to be undone."""
    journal = json.dumps({"journal": {"stop_issued": True}, "tries": 1})
    half_done = insert(database_path, type="recreate", container="web", cancel_requested=1, result=journal)
    untouched = insert(database_path, type="recreate", container="db", cancel_requested=1, result='{"journal": {}}')

    assert database.cancel_pending(host=HOST) == [untouched]
    assert row(database_path, half_done)["status"] == "pending"
    assert claim_ids(database) == [half_done]


# Grouped writes and the prepared claim path


def test_grouped_writes_fence_each_claim(database: Database, database_path: Path) -> None:
    held_id = insert(database_path, type="start", image="a")
    lost_id = insert(database_path, type="start", image="b")
    held, lost = database.claim(host=HOST, instance_id=INSTANCE, limit=2)
    writes = [
        ClaimedWrite(held.id, held.attempts, Database.update_values(progress=40), (NewLog(held.id, "INFO", "kept"),)),
        ClaimedWrite(lost.id, lost.attempts + 1, Database.update_values(progress=40), (NewLog(lost.id, "INFO", "dropped"),)),
        ClaimedWrite(held.id, held.attempts, {}, (NewLog(held.id, "DEBUG", "log only"),)),
    ]

    outcome = database.write_claimed(writes)

    assert outcome == [True, False, True]
    assert row(database_path, held_id)["progress"] == 40
    assert row(database_path, lost_id)["progress"] == 0
    assert log_count(database_path, held_id) == 2
    assert log_count(database_path, lost_id) == 0


def test_log_rows_keep_event_time(database: Database, database_path: Path) -> None:
    op_id = insert(database_path, type="start", image="a")
    claimed = database.claim(host=HOST, instance_id=INSTANCE, limit=1)[0]
    happened = datetime(2026, 5, 17, 8, 30, 12, 345678)

    database.update(claimed.id, claimed.attempts, logs=[NewLog(op_id, "INFO", "earlier", created_at=happened)])
    stored = sql(database_path, "SELECT created_at FROM docker_operation_logs WHERE operation_id = ?", op_id)

    assert stored[0]["created_at"] == "2026-05-17 08:30:12.345"


def test_claimed_row_has_python_types(database: Database, database_path: Path) -> None:
    insert(database_path, type="start", image="a", cancel_requested=1, result={"journal": {"step": 1}})

    claimed = database.claim(host=HOST, instance_id=INSTANCE, limit=1)[0]

    assert claimed.cancel_requested is True
    assert isinstance(claimed.created_at, datetime)
    assert isinstance(claimed.started_at, datetime)
    assert isinstance(claimed.heartbeat_at, datetime)
    assert claimed.finished_at is None
    assert claimed.attempts == 1
    assert claimed.claimed_by == INSTANCE


def test_cancel_lookup_uses_partial_index(database: Database, database_path: Path) -> None:
    statement = _CANCEL_REQUESTED_ROWS.compile(database.engine)
    parameters = [{"host": HOST, **statement.params}[name] for name in statement.positiontup]

    plan = sql(database_path, "EXPLAIN QUERY PLAN " + statement.string, *parameters)

    assert any(CANCEL_INDEX in step["detail"] for step in plan)


def test_claim_error_names_locked_database(database: Database, database_path: Path) -> None:
    insert(database_path, type="start", image="a")
    blocker = sqlite3.connect(database_path, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    quick = Database(f"sqlite:///{database_path}")
    # Runs after the controller's own connect hook, so the claim fails at once instead of in 10 s.
    sa.event.listen(quick.engine, "connect", lambda connection, _record: connection.execute("PRAGMA busy_timeout=0"))
    try:
        with pytest.raises(OperationalError) as caught:
            quick.claim(host=HOST, instance_id=INSTANCE, limit=1)
    finally:
        blocker.rollback()
        blocker.close()
        quick.close()

    assert "locked" in str(caught.value)
    assert row(database_path, 1)["status"] == "pending"


def test_log_only_write_of_deleted_row(database: Database, database_path: Path) -> None:
    op_id = insert(database_path, type="start", image="a")
    claimed = database.claim(host=HOST, instance_id=INSTANCE, limit=1)[0]
    sql(database_path, "DELETE FROM docker_operations WHERE id = ?", op_id)

    outcome = database.write_claimed([ClaimedWrite(op_id, claimed.attempts, {}, (NewLog(op_id, "INFO", "late"),))])

    assert outcome == [False]
    assert log_count(database_path, op_id) == 0


def test_log_only_write_of_lost_claim(database: Database, database_path: Path) -> None:
    op_id, stale = _rescued_and_reclaimed(database, database_path)

    outcome = database.write_claimed([ClaimedWrite(op_id, stale.attempts, {}, (NewLog(op_id, "INFO", "stale"),))])
    stale_rows = sql(database_path, "SELECT * FROM docker_operation_logs WHERE message = 'stale'")

    assert outcome == [False]
    assert stale_rows == []


@pytest.mark.parametrize("created_at", [1733350000, "not a date"])
def test_malformed_timestamp_row_is_served(database: Database, database_path: Path, created_at: Any) -> None:
    odd = insert(database_path, type="start", image="a", container="odd", created_at=created_at)
    normal = insert(database_path, type="start", image="a", container="normal")

    claimed = {row.id: row for row in database.claim(host=HOST, instance_id=INSTANCE, limit=5)}
    listed = [row.id for row in database.list()]
    fetched = database.get(odd)

    assert set(claimed) == {odd, normal}
    assert claimed[odd].created_at is None
    assert isinstance(claimed[normal].created_at, datetime)
    assert listed == [normal, odd]
    assert fetched is not None
    assert fetched.created_at is None


def test_malformed_heartbeat_row_is_rescued(database: Database, database_path: Path) -> None:
    op_id = insert(database_path, type="start", image="a", status="in_progress", attempts=1, heartbeat_at=5)

    stale = database.in_progress(host=HOST, stale_before=utc_now())

    assert [row.id for row in stale] == [op_id]
    assert stale[0].heartbeat_at is None


def test_malformed_log_time_reads_as_none(database: Database, database_path: Path) -> None:
    op_id = insert(database_path, type="start", image="a")
    sql(database_path, "INSERT INTO docker_operation_logs (operation_id, message, created_at) VALUES (?, 'odd', 17)", op_id)
    sql(database_path, "INSERT INTO docker_operation_logs (operation_id, message) VALUES (?, 'normal')", op_id)

    logs = database.logs(op_id)

    assert [log.message for log in logs] == ["odd", "normal"]
    assert logs[0].created_at is None
    assert isinstance(logs[1].created_at, datetime)
