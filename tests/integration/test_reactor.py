"""The reconcile loop's own rules, run in-process against a fake engine and a SQLite file.

Each test runs `Controller` in the test's event loop with `FakeDocker` injected, inserts rows
with plain SQL the way another service would, and watches the table. What an operation does
to real containers is tested against the real engine elsewhere. These tests pin only the
controller's rules: claiming, ordering, concurrency, retries, cancellation, engine outages,
staleness, change notification and log retention.

Every test also runs under `no_blocking_calls`, which fails it when any callback holds the
event loop for longer than `SLOW_CALLBACK_SECONDS`.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import sqlalchemy as sa

# Imported here so that the first operation does not import them on the event loop, which
# the blocking-call guard would rightly report.
import controller.operations.start  # noqa: F401
from controller.clients import migrate
from controller.clients.database import Database
from controller.config import Settings
from controller.errors import PermanentError, TransientError
from controller.reactor import executor
from controller.reactor.controller import Controller, _route_docker_call
from tests.support.fake_docker import FakeDocker

pytestmark = pytest.mark.anyio

# Long enough that one-time work on a loaded 2-CPU machine (the first JSON line, first regular
# expressions) passes; database calls on the loop are caught exactly by `no_database_calls_on_loop`.
SLOW_CALLBACK_SECONDS = 0.25
IMAGE = "localhost:5001/demo/web:1"
TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", autouse=True)
def warm_up() -> None:
    """Pay one-time costs off the event loop, as the daemon does before its loop starts.

    The daemon configures logging before `anyio.run`; the first JSON log line and the first
    Compose plan then build caches (regular expressions, the renderer) that take up to about
    150 ms of CPU on a loaded machine, which the blocking-call guard would report.
    """
    from controller.logs import configure_logging, get_logger
    from controller.specs.compose import plan_service

    configure_logging(log_format="json", level="DEBUG")
    get_logger().debug("tests.warm_up", message="warming up the log renderer")
    plan_service({"ports": ["127.0.0.1:1:1"], "environment": {"A": "b"}}, name="warm-up", image=IMAGE)


@dataclass
class _ThreadClock:
    """Wall time, CPU time and context switches of the calling thread."""

    wall: float
    cpu: float
    voluntary_switches: int
    involuntary_switches: int

    @classmethod
    def now(cls) -> "_ThreadClock":
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return cls(time.perf_counter(), usage.ru_utime + usage.ru_stime, usage.ru_nvcsw, usage.ru_nivcsw)


def _task_of(handle: asyncio.events.Handle) -> asyncio.Task[Any] | None:
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    return task if isinstance(task, asyncio.Task) else None


def _is_test_body(handle: asyncio.events.Handle) -> bool:
    """Tell whether a callback is a step of the test function itself (anyio's test runner task)."""
    task = _task_of(handle)
    return task is not None and getattr(task.get_coro(), "__qualname__", "").endswith("_run_tests_and_fixtures")


def _describe(handle: asyncio.events.Handle) -> str:
    """Name the task a callback belongs to, or the callback itself."""
    task = _task_of(handle)
    if task is not None:
        return f"task {task.get_name()} ({task.get_coro()!r})"
    return repr(handle)


@pytest.fixture(autouse=True)
def no_blocking_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test when a callback blocks the event loop for more than `SLOW_CALLBACK_SECONDS`.

    Every asyncio callback (each step of each task) is timed. A callback counts as blocking
    when it used more than `SLOW_CALLBACK_SECONDS` of CPU time, or took that long in wall time
    and went to sleep in the kernel (a voluntary context switch: a blocking read, a lock, a
    `time.sleep`). A callback that was only preempted by other processes, as happens on a
    loaded test machine, is not counted. Steps of the test function itself are not counted
    either: they build the controller on the loop, which the daemon does before its loop starts.
    """
    slow: list[str] = []
    original_run = asyncio.events.Handle._run

    def timed_run(handle: asyncio.events.Handle) -> None:
        before = _ThreadClock.now()
        try:
            original_run(handle)
        finally:
            after = _ThreadClock.now()
            wall = after.wall - before.wall
            cpu = after.cpu - before.cpu
            slept = after.voluntary_switches - before.voluntary_switches
            preempted = after.involuntary_switches - before.involuntary_switches
            blocked = cpu > SLOW_CALLBACK_SECONDS or (wall > SLOW_CALLBACK_SECONDS and slept)
            if blocked and not _is_test_body(handle):
                slow.append(f"{_describe(handle)}: {wall:.3f} s wall, {cpu:.3f} s CPU, {slept} sleeps, {preempted} preemptions")

    monkeypatch.setattr(asyncio.events.Handle, "_run", timed_run)
    yield
    monkeypatch.undo()
    if slow:
        pytest.fail("blocking call on the event loop:\n" + "\n".join(slow), pytrace=False)


@pytest.fixture(autouse=True)
def no_database_calls_on_loop() -> Iterator[None]:
    """Fail the test when the controller runs a SQL statement on the event loop's thread."""
    loop_threads: list[str] = []

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread, as intended
        loop_threads.append(statement.split()[0] + " ...")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before_execute)
    yield
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", before_execute)
    if loop_threads:
        pytest.fail("SQL statements ran on the event loop: " + ", ".join(loop_threads[:5]), pytrace=False)


# The table, as another service reads and writes it. Every call runs in a worker thread, so the test's
# own database access never blocks the event loop either.


class Table:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10)
        connection.row_factory = sqlite3.Row
        return connection

    def _execute(self, sql: str, params: tuple[Any, ...]) -> tuple[list[dict[str, Any]], int]:
        connection = self._connect()
        try:
            with connection:
                cursor = connection.execute(sql, params)
                rows = [dict(row) for row in cursor.fetchall()]
                return rows, int(cursor.lastrowid or 0)
        finally:
            connection.close()

    async def execute(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        rows, _ = await anyio.to_thread.run_sync(self._execute, sql, params)
        return rows

    async def insert(self, **columns: Any) -> int:
        """Insert a row naming only the given columns; mappings are stored as JSON text."""
        values = {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in columns.items()}
        sql = f"INSERT INTO docker_operations ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})"
        _, row_id = await anyio.to_thread.run_sync(self._execute, sql, tuple(values.values()))
        return row_id

    async def insert_log(self, op_id: int, message: str, *, created_at: str | None = None) -> None:
        await self.execute(
            "INSERT INTO docker_operation_logs (operation_id, message, created_at) "
            "VALUES (?, ?, coalesce(?, strftime('%Y-%m-%d %H:%M:%f', 'now')))",
            op_id,
            message,
            created_at,
        )

    async def row(self, op_id: int) -> dict[str, Any]:
        rows = await self.execute("SELECT * FROM docker_operations WHERE id = ?", op_id)
        assert rows, f"no operation {op_id}"
        return rows[0]

    async def logs(self, op_id: int) -> list[dict[str, Any]]:
        return await self.execute("SELECT * FROM docker_operation_logs WHERE operation_id = ? ORDER BY id", op_id)

    async def wait_until(self, op_id: int, condition: Any, *, timeout: float = 5.0) -> dict[str, Any]:
        """Poll until `condition(row)` holds; fail showing the row when it does not."""
        deadline = time.monotonic() + timeout
        while True:
            row = await self.row(op_id)
            if condition(row):
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"operation {op_id}: condition not met within {timeout} s: {row}")
            await anyio.sleep(0.02)

    async def wait(self, op_id: int, *, statuses: tuple[str, ...] = TERMINAL, timeout: float = 5.0) -> dict[str, Any]:
        """Poll until the row reaches one of `statuses`; fail showing the row when it does not."""
        deadline = time.monotonic() + timeout
        while True:
            row = await self.row(op_id)
            if row["status"] in statuses:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"operation {op_id} not {'/'.join(statuses)} within {timeout} s: {row}")
            await anyio.sleep(0.02)


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    path = tmp_path / "dockwright.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database.engine)
    database.close()
    return path


@pytest.fixture
def table(database_path: Path) -> Table:
    return Table(database_path)


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker(observer=_route_docker_call)


def make_settings(database_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{database_path}",
        "instance_id": "test-controller",
        "poll_interval": 0.2,
        "stale_after": 2.0,
        "sweep_interval": 0.5,
        "shutdown_grace": 1.0,
    }
    values.update(changes)
    return Settings(**values)


@asynccontextmanager
async def serving(database_path: Path, docker: FakeDocker, **settings: Any) -> AsyncIterator[Controller]:
    """Run a controller until the block ends, then cancel it as a shutdown would."""
    controller = Controller(make_settings(database_path, **settings), docker=docker)
    try:
        async with anyio.create_task_group() as group:
            await group.start(controller.run)
            try:
                yield controller
            finally:
                group.cancel_scope.cancel()
    finally:
        controller.close()


def start_row(container: str, *, image: str = IMAGE, **columns: Any) -> dict[str, Any]:
    return {"type": "start", "container": container, "image": image, **columns}


# A start row runs to completion


async def test_start_row_completes(table: Table, database_path: Path, docker: FakeDocker) -> None:
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web", spec={"environment": {"MODE": "demo"}}))
        row = await table.wait(op_id)

    logs = await table.logs(op_id)
    details = [json.loads(log["details"]) for log in logs if log["details"]]
    docker_calls = [detail for detail in details if "call" in detail]
    result = json.loads(row["result"])

    assert row["status"] == "completed", row
    assert row["progress"] == 100
    assert row["attempts"] == 1
    assert row["claimed_by"] == "test-controller"
    assert row["finished_at"] is not None
    assert result["outcome"] == "created"
    assert docker.containers["web"]["State"]["Running"] is True
    assert docker.containers["web"]["Config"]["Env"] == ["MODE=demo"]
    assert {detail["call"] for detail in docker_calls} >= {"inspect_container", "pull", "create_container_from_config", "start"}
    assert all("duration_ms" in detail for detail in docker_calls)
    assert any(detail.get("cli", "").startswith("docker create --name web") for detail in docker_calls)
    assert any(detail.get("cli") == f"docker pull {IMAGE}" for detail in docker_calls)


async def test_existing_container_already_running(table: Table, database_path: Path, docker: FakeDocker) -> None:
    async with serving(database_path, docker):
        first = await table.insert(**start_row("web"))
        await table.wait(first)
        second = await table.insert(**start_row("web"))
        row = await table.wait(second)

    assert row["status"] == "completed"
    assert json.loads(row["result"])["outcome"] == "already_running"
    assert row["message"] == "web already running"


# Concurrency and ordering


async def test_concurrency_is_bounded(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.pull_seconds = 0.4
    max_running = 0
    max_in_progress = 0
    async with serving(database_path, docker, concurrency=2) as controller:
        ids = [await table.insert(**start_row(f"web{i}", image=f"localhost:5001/demo/web{i}:1")) for i in range(5)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            in_progress = await table.execute("SELECT count(*) AS n FROM docker_operations WHERE status = 'in_progress'")
            max_in_progress = max(max_in_progress, in_progress[0]["n"])
            max_running = max(max_running, len(controller.running), docker.pulls_running)
            finished = await table.execute("SELECT count(*) AS n FROM docker_operations WHERE status IN ('completed', 'failed')")
            if finished[0]["n"] == len(ids):
                break
            await anyio.sleep(0.02)
        rows = [await table.row(op_id) for op_id in ids]

    assert [row["status"] for row in rows] == ["completed"] * 5
    assert max_running == 2
    assert max_in_progress == 2


async def test_claims_by_priority_then_age(table: Table, database_path: Path, docker: FakeDocker) -> None:
    priorities = {"low": 0, "high-old": 5, "middle": 1, "high-new": 5}
    ids = {}
    for name, priority in priorities.items():
        ids[name] = await table.insert(**start_row(name, image=f"localhost:5001/demo/{name}:1", priority=priority))
        await anyio.sleep(0.005)  # distinct created_at values

    async with serving(database_path, docker, concurrency=1):
        for op_id in ids.values():
            await table.wait(op_id)

    pulled = [args[0].rsplit("/", 1)[-1] for method, args, _ in docker.requests if method == "pull"]
    assert pulled == ["high-old", "high-new", "middle", "low"]


async def test_same_container_runs_in_order(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.pull_seconds = 0.5
    async with serving(database_path, docker, concurrency=4):
        first = await table.insert(**start_row("web", options={"pull": "always"}))
        other = await table.insert(**start_row("db", image="localhost:5001/demo/db:1"))
        second = await table.insert(**start_row("web", options={"pull": "always"}))
        rows = {name: await table.wait(op_id) for name, op_id in (("first", first), ("other", other), ("second", second))}

    assert [row["status"] for row in rows.values()] == ["completed"] * 3
    assert rows["second"]["started_at"] >= rows["first"]["finished_at"]
    assert rows["other"]["started_at"] < rows["first"]["finished_at"]


# Retries and failures


async def test_transient_error_gives_up(
    table: Table, database_path: Path, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "BACKOFF_BASE", 0.01)
    docker.fail("create_container_from_config", TransientError("engine busy: try later"))
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web", options={"max_attempts": 3}))
        row = await table.wait(op_id)

    creates = [method for method, _, _ in docker.requests if method == "create_container_from_config"]
    messages = [log["message"] for log in await table.logs(op_id)]
    assert row["status"] == "failed"
    assert row["error"] == "gave up after 3 tries: engine busy: try later"
    assert len(creates) == 3
    assert any("retrying in" in message and "(try 2 of 3)" in message for message in messages)
    assert any("(try 3 of 3)" in message for message in messages)


async def test_transient_error_then_success(
    table: Table, database_path: Path, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "BACKOFF_BASE", 0.01)
    docker.fail("create_container_from_config", TransientError("engine busy: try later"), times=2)
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        row = await table.wait(op_id)

    assert row["status"] == "completed"
    assert row["attempts"] == 1
    assert json.loads(row["result"])["tries"] == 3


async def test_permanent_error_fails_at_once(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.fail("create_container_from_config", PermanentError("create_container_from_config: invalid mount config"))
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        row = await table.wait(op_id)

    creates = [method for method, _, _ in docker.requests if method == "create_container_from_config"]
    assert row["status"] == "failed"
    assert row["error"] == "create_container_from_config: invalid mount config"
    assert len(creates) == 1


async def test_missing_image_fails_at_once(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.missing_images.add("localhost:5001/demo/absent:1")
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web", image="localhost:5001/demo/absent:1"))
        row = await table.wait(op_id)

    assert row["status"] == "failed"
    assert "localhost:5001/demo/absent:1 not found" in row["error"]
    assert "web" not in docker.containers


async def test_engine_outage_pauses_claims(table: Table, database_path: Path, docker: FakeDocker) -> None:
    async with serving(database_path, docker) as controller:
        docker.unreachable = True
        first = await table.insert(**start_row("web"))
        released = await table.wait_until(first, lambda row: row["status"] == "pending" and row["attempts"] == 1)
        second = await table.insert(**start_row("db"))
        await anyio.sleep(0.5)
        paused_first = await table.row(first)
        paused_second = await table.row(second)
        engine_down = controller.engine_down

        docker.unreachable = False
        completed_first = await table.wait(first, timeout=5)
        completed_second = await table.wait(second, timeout=5)

    assert released["message"].startswith("waiting for the Docker engine")
    assert engine_down is not None
    assert paused_first["status"] == "pending"
    assert paused_first["attempts"] == 1
    assert paused_second["status"] == "pending"
    assert paused_second["attempts"] == 0
    assert completed_first["status"] == "completed"
    assert completed_first["attempts"] == 2
    assert completed_second["status"] == "completed"


async def test_invalid_rows_fail_by_column(table: Table, database_path: Path, docker: FakeDocker) -> None:
    cases = [
        ({"type": "bogus", "container": "bogus"}, "type: unknown operation type 'bogus'"),
        ({"type": "start", "container": "json", "image": IMAGE, "spec": "{not json"}, "spec: invalid JSON '{not json'"),
        ({"type": "start", "container": "option", "image": IMAGE, "options": '{"bogus": 1}'}, "options.bogus: unknown option"),
        ({"type": "start", "container": "pull", "image": IMAGE, "options": '{"pull": "sometimes"}'}, "options.pull: must be one of"),
        ({"type": "start", "container": "noimage"}, "spec: a start needs an image"),
        ({"type": "start", "container": "ref", "image": "Not A Reference"}, "Not A Reference"),
        ({"type": "start", "container": "build", "image": IMAGE, "spec": '{"build": "."}'}, "spec.build"),
        ({"type": "update_image"}, "image: an update_image needs the image reference"),
    ]
    async with serving(database_path, docker):
        ids = [await table.insert(**columns) for columns, _ in cases]
        valid = await table.insert(**start_row("web"))
        rows = [await table.wait(op_id) for op_id in ids]
        valid_row = await table.wait(valid)

    for row, (columns, expected) in zip(rows, cases):
        assert row["status"] == "failed", (columns, row)
        assert expected in (row["error"] or ""), (columns, row["error"])
    for op_id in ids:
        logs = await table.logs(op_id)
        assert any(log["level"] == "ERROR" for log in logs), (op_id, logs)
    assert valid_row["status"] == "completed"


# Cancellation


async def test_cancel_pending_without_claim(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.pull_seconds = 1.0
    async with serving(database_path, docker):
        running = await table.insert(**start_row("web"))
        await table.wait(running, statuses=("in_progress",))
        queued = await table.insert(**start_row("web"))
        await table.execute("UPDATE docker_operations SET cancel_requested = 1 WHERE id = ?", queued)
        cancelled = await table.wait(queued, timeout=2)
        first_row = await table.row(running)
        completed = await table.wait(running)

    assert cancelled["status"] == "cancelled"
    assert cancelled["attempts"] == 0
    assert cancelled["started_at"] is None
    assert cancelled["finished_at"] is not None
    assert first_row["status"] == "in_progress"
    assert completed["status"] == "completed"


async def test_cancel_aborts_slow_pull(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.pull_seconds = 20.0
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        while docker.pulls_running == 0:
            await anyio.sleep(0.02)
        requested_at = time.monotonic()
        await table.execute("UPDATE docker_operations SET cancel_requested = 1 WHERE id = ?", op_id)
        row = await table.wait(op_id, timeout=5)
        waited = time.monotonic() - requested_at

    assert row["status"] == "cancelled"
    assert row["message"] == "cancelled at the request of a user during step pull"
    assert docker.aborted_pulls == [IMAGE]
    assert "web" not in docker.containers
    assert waited < 3.0


async def test_cancel_during_retry_wait(
    table: Table, database_path: Path, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "BACKOFF_BASE", 30.0)
    docker.fail("create_container_from_config", TransientError("engine busy: try later"))
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        await table.wait_until(op_id, lambda row: "retrying in" in (row["message"] or ""))
        await table.execute("UPDATE docker_operations SET cancel_requested = 1 WHERE id = ?", op_id)
        row = await table.wait(op_id, timeout=4)

    creates = [method for method, _, _ in docker.requests if method == "create_container_from_config"]
    assert row["status"] == "cancelled"
    assert len(creates) == 1


# Shutdown, staleness, pick-up and retention


async def test_shutdown_returns_row_to_pending(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.pull_seconds = 20.0
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        while docker.pulls_running == 0:
            await anyio.sleep(0.02)

    row = await table.row(op_id)
    assert row["status"] == "pending"
    assert row["message"] == "returned to pending at controller shutdown"
    assert row["claimed_by"] is None
    assert docker.aborted_pulls == [IMAGE]


async def test_lost_claim_stops_operation(table: Table, database_path: Path, docker: FakeDocker) -> None:
    docker.pull_seconds = 20.0
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        while docker.pulls_running == 0:
            await anyio.sleep(0.02)
        # Another controller rescued and claimed the row meanwhile.
        await table.execute(
            "UPDATE docker_operations SET attempts = attempts + 1, claimed_by = 'other-host-1' WHERE id = ?", op_id
        )
        taken_over = await table.row(op_id)
        deadline = time.monotonic() + 4
        while not docker.aborted_pulls and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        row = await table.row(op_id)

    assert docker.aborted_pulls == [IMAGE]
    assert row == taken_over
    assert "web" not in docker.containers


async def test_long_operation_keeps_claim(table: Table, database_path: Path, docker: FakeDocker) -> None:
    """An operation that runs past `stale_after` is kept alive by heartbeats, not rescued."""
    docker.pull_seconds = 4.0
    async with serving(database_path, docker, stale_after=2.0, sweep_interval=0.5):
        op_id = await table.insert(**start_row("web"))
        row = await table.wait(op_id, timeout=8)

    messages = [log["message"] for log in await table.logs(op_id)]
    assert row["status"] == "completed"
    assert row["attempts"] == 1
    assert not any("rescued" in message for message in messages)


async def test_stale_rows_rescued_or_failed(table: Table, database_path: Path, docker: FakeDocker) -> None:
    stale = {
        "status": "in_progress",
        "claimed_by": "other-host-1",
        "heartbeat_at": "2020-01-01 00:00:00.000",
        "started_at": "2020-01-01 00:00:00.000",
    }
    async with serving(database_path, docker, stale_after=30.0):
        rescued = await table.insert(**start_row("web", attempts=1, **stale))
        exhausted = await table.insert(**start_row("db", attempts=5, **stale))
        unclaimed = await table.insert(**start_row("queue", attempts=1, **{**stale, "claimed_by": None}))
        alive = await table.insert(
            **start_row("cache", attempts=1, status="in_progress", claimed_by="other-host-2", heartbeat_at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
        )
        rescued_row = await table.wait(rescued)
        exhausted_row = await table.wait(exhausted)
        await table.wait(unclaimed)
        await anyio.sleep(1.0)  # two more sweeps
        alive_row = await table.row(alive)

    rescued_messages = [log["message"] for log in await table.logs(rescued)]
    assert rescued_row["status"] == "completed"
    assert rescued_row["attempts"] == 2
    assert any(message.startswith("rescued: controller other-host-1 stopped heartbeating") for message in rescued_messages)
    assert exhausted_row["status"] == "failed"
    assert "went stale" in exhausted_row["error"]
    assert "all 5 attempts are used" in exhausted_row["error"]
    assert exhausted_row["attempts"] == 5
    assert alive_row["status"] == "in_progress"
    assert alive_row["claimed_by"] == "other-host-2"
    unclaimed_messages = [log["message"] for log in await table.logs(unclaimed)]
    assert any(message.startswith("rescued: in progress with no controller in claimed_by") for message in unclaimed_messages)


async def test_pickup_before_poll_interval(table: Table, database_path: Path, docker: FakeDocker) -> None:
    async with serving(database_path, docker, poll_interval=10.0):
        await anyio.sleep(0.3)  # let the loop settle into its wait
        inserted_at = time.monotonic()
        op_id = await table.insert(**start_row("web"))
        await table.wait(op_id, statuses=("in_progress", "completed"), timeout=1.0)
        waited = time.monotonic() - inserted_at

    assert waited < 1.0


async def test_log_retention(table: Table, database_path: Path, docker: FakeDocker) -> None:
    old = await table.insert(type="start", container="old", image=IMAGE, status="completed", finished_at="2020-01-01 00:00:00.000")
    recent = await table.insert(
        type="start", container="recent", image=IMAGE, status="failed", finished_at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    )
    waiting = await table.insert(type="start", container="waiting", image=IMAGE, priority=-1, host="elsewhere")
    for op_id in (old, recent, waiting):
        await table.insert_log(op_id, "a step", created_at="2020-01-01 00:00:00.000")

    async with serving(database_path, docker, log_retention_days=1.0):
        deadline = time.monotonic() + 3
        while await table.logs(old) and time.monotonic() < deadline:
            await anyio.sleep(0.05)

    assert await table.logs(old) == []
    assert len(await table.logs(recent)) == 1
    assert len(await table.logs(waiting)) == 1


async def test_engine_waits_do_not_use_attempts(table: Table, database_path: Path, docker: FakeDocker) -> None:
    """Claims that ended waiting for the engine leave the stale sweep's budget intact."""
    stale = {
        "status": "in_progress",
        "claimed_by": "other-host-1",
        "heartbeat_at": "2020-01-01 00:00:00.000",
        "started_at": "2020-01-01 00:00:00.000",
    }
    async with serving(database_path, docker, stale_after=30.0):
        waited = await table.insert(
            **start_row("web", attempts=5, result={"tries": 1, "engine_waits": 4, "journal": {}}, **stale)
        )
        waited_row = await table.wait(waited)

    assert waited_row["status"] == "completed"
    assert waited_row["attempts"] == 6


async def test_engine_outage_uses_no_try(table: Table, database_path: Path, docker: FakeDocker) -> None:
    async with serving(database_path, docker):
        docker.unreachable = True
        op_id = await table.insert(**start_row("web", options={"max_attempts": 1}))
        released = await table.wait_until(op_id, lambda row: row["status"] == "pending" and row["attempts"] == 1)
        docker.unreachable = False
        completed = await table.wait(op_id, timeout=5)

    result = json.loads(completed["result"])
    assert json.loads(released["result"])["tries"] == 0
    assert completed["status"] == "completed"
    assert result["engine_waits"] == 1
    assert result["tries"] == 1


async def test_waiting_step_is_shown(
    table: Table, database_path: Path, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's message and log rows reach the table while the step waits, not only at the end."""
    docker.add_image(IMAGE)
    original_call = docker.call

    async def slow_start(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "start":
            await anyio.sleep(2.0)
        return await original_call(method, *args, **kwargs)

    monkeypatch.setattr(docker, "call", slow_start)
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        row = await table.wait_until(op_id, lambda row: row["message"] == "Starting container web", timeout=1.5)
        messages = [log["message"] for log in await table.logs(op_id)]
        finished = await table.wait(op_id)

    assert row["status"] == "in_progress"
    assert "Starting container web" in messages
    assert finished["status"] == "completed"


async def test_reclaimed_row_waits_for_earlier_claim(table: Table, database_path: Path, docker: FakeDocker) -> None:
    """A row set back to pending while its Docker call runs is claimed again, but not run twice at once."""
    original_call = docker.call
    in_flight: list[int] = []
    running = 0
    first_started = anyio.Event()

    async def call(method: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal running
        running += 1
        in_flight.append(running)
        try:
            if method == "inspect_container" and not first_started.is_set():
                first_started.set()
                # Like a docker-py request in its worker thread: cancelling the task waits for it.
                await anyio.to_thread.run_sync(time.sleep, 1.0)
            return await original_call(method, *args, **kwargs)
        finally:
            running -= 1

    docker.call = call  # type: ignore[method-assign]
    async with serving(database_path, docker):
        op_id = await table.insert(**start_row("web"))
        await first_started.wait()
        await table.execute("UPDATE docker_operations SET status = 'pending' WHERE id = ?", op_id)
        row = await table.wait(op_id, timeout=8)

    assert row["status"] == "completed"
    assert row["attempts"] == 2
    assert max(in_flight) == 1


async def test_resumed_start_connects_missing_networks(table: Table, database_path: Path, docker: FakeDocker) -> None:
    """A start that stopped between the create and the network connects connects them when it runs again."""
    spec = {"networks": ["front", "back"]}
    docker.fail("connect_container_to_network", PermanentError("connection refused by a test"), times=1)
    async with serving(database_path, docker):
        first = await table.insert(**start_row("web", spec=spec))
        failed = await table.wait(first)
        attached_after_failure = set(docker.containers["web"]["NetworkSettings"]["Networks"])
        second = await table.insert(**start_row("web", spec=spec))
        resumed = await table.wait(second)

    assert failed["status"] == "failed"
    assert len(attached_after_failure) == 1
    assert resumed["status"] == "completed"
    assert json.loads(resumed["result"])["outcome"] == "started_existing"
    assert set(docker.containers["web"]["NetworkSettings"]["Networks"]) == {"front", "back"}
    assert docker.containers["web"]["State"]["Running"] is True
