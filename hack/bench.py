"""Benchmarks of the controller on SQLite; writes the results to docs/benchmarks.md.

    .venv/bin/python hack/bench.py [--only NAME] [--quick]

Each benchmark is one function registered with `@benchmark`; it returns its figures, and the
script prints each with its target and PASS or FAIL. docs/benchmarks.md contains one section per
benchmark between marker comments, so a run with `--only` rewrites its own section and keeps
the others. `--quick` takes fewer samples, for a check that the script still works; the
command shown in each section shows whether a run was quick.

The benchmarks need the Docker engine and the shared test image
(hack/engine.sh, hack/registries.sh, hack/images.sh). The throughput benchmark replaces the
engine with `FakeDocker` below, in the same process as the controller, so that it measures
the controller's own cost. Every container a benchmark creates is named `dwbench-...` and
removed afterwards.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import re
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import anyio
import anyio.lowlevel
import anyio.to_thread
import docker
import docker.errors

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from controller.clients import migrate as migrations  # noqa: E402
from controller.clients.database import Database  # noqa: E402
from controller.clients.docker import DockerClient, DockerNotFound  # noqa: E402
from controller.config import Settings  # noqa: E402
from controller.logs import configure_logging  # noqa: E402
from controller.reactor.controller import Controller, _route_docker_call  # noqa: E402
from controller.specs.compose import plan_service  # noqa: E402

RESULTS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
DOCKWRIGHT = str(Path(sys.executable).parent / "dockwright")
TEST_IMAGE = "localhost:5001/dockwright-test/web:1"
NAME_PREFIX = "dwbench-"
TERMINAL = ("completed", "failed", "cancelled")

# Milliseconds between a SQLite timestamp column and another, computed by SQLite itself.
SQL_MS = "(julianday({end}) - julianday({start})) * 86400000.0"


@dataclass(frozen=True)
class Figure:
    """One measured value with its target; `passed` is None when there is no target."""

    name: str
    value: float
    unit: str
    target: str
    passed: bool | None
    method: str

    def shown_value(self) -> str:
        if isinstance(self.value, int):
            text = str(self.value)
        elif abs(self.value) >= 100:
            text = f"{self.value:.0f}"
        else:
            text = f"{self.value:#.3g}"
        return f"{text} {self.unit}".strip()

    def verdict(self) -> str:
        if self.passed is None:
            return "-"
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class RunOptions:
    quick: bool
    workdir: Path


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Callable[[RunOptions], list[Figure]]


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, title: str) -> Callable[[Callable[[RunOptions], list[Figure]]], Callable[[RunOptions], list[Figure]]]:
    """Register a benchmark function under `name`; the order of registration is the page order."""

    def register(function: Callable[[RunOptions], list[Figure]]) -> Callable[[RunOptions], list[Figure]]:
        BENCHMARKS[name] = Benchmark(name, title, function)
        return function

    return register


# Helpers


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank percentile (`share` from 0 to 1) of `values`."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def unique_names(kind: str) -> str:
    return f"{NAME_PREFIX}{kind}-{secrets.token_hex(3)}"


def connect_table(path: Path) -> sqlite3.Connection:
    """Open the database file the way another service would: stdlib sqlite3, 5 s busy timeout."""
    connection = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    return connection


def create_schema(path: Path) -> None:
    database = Database(f"sqlite:///{path}")
    try:
        migrations.upgrade(database.engine)
    finally:
        database.close()


def wait_terminal(connection: sqlite3.Connection, op_id: int, *, timeout: float) -> sqlite3.Row:
    """Poll one row every 5 ms until it is terminal; raise with the row when it is not in time."""
    deadline = time.monotonic() + timeout
    while True:
        row = connection.execute("SELECT * FROM docker_operations WHERE id = ?", (op_id,)).fetchone()
        if row["status"] in TERMINAL:
            return row
        if time.monotonic() > deadline:
            raise RuntimeError(f"operation {op_id} is still {row['status']} after {timeout} s: {dict(row)}")
        time.sleep(0.005)


def remove_containers(api: docker.APIClient, names: list[str]) -> None:
    for name in names:
        try:
            api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass


def remove_leftovers(api: docker.APIClient) -> None:
    """Remove containers of an earlier, interrupted run of this script."""
    leftovers = api.containers(all=True, filters={"name": NAME_PREFIX})
    names = [name.lstrip("/") for container in leftovers for name in container["Names"]]
    remove_containers(api, [name for name in names if name.startswith(NAME_PREFIX)])


class DaemonProcess:
    """`dockwright run` as a subprocess on its own SQLite file, logging JSON to a file."""

    def __init__(self, workdir: Path, *, log_level: str = "INFO") -> None:
        self.workdir = workdir
        self.database = workdir / "dockwright.db"
        self.log_path = workdir / "daemon.log"
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30.0) -> "DaemonProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKWRIGHT_")}
        env.update(
            DOCKWRIGHT_DATABASE_URL=f"sqlite:///{self.database}",
            DOCKWRIGHT_LOG_FORMAT="json",
            DOCKWRIGHT_LOG_LEVEL=self.log_level,
            DOCKWRIGHT_HTTP_BIND="127.0.0.1:0",
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([DOCKWRIGHT, "run"], cwd=self.workdir, env=env, stdout=log, stderr=log)

        deadline = time.monotonic() + timeout
        while '"controller.ready"' not in self.log_text():
            if self.process.poll() is not None:
                raise RuntimeError(f"dockwright run exited with {self.process.returncode}:\n{self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockwright run not ready after {timeout} s:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


class FakeDocker(DockerClient):
    """An in-memory engine behind the real client's timing and observer.

    It handles only the calls of a `start` of a present image: container and image inspect,
    create, start and ping. Each returns at once, so the throughput benchmark measures the
    controller: claims, progress writes, log rows and the final write. With `thread_hop` each
    call returns through a worker thread, as a real engine request does. Without it, calls
    return on the event loop, which leaves only the controller's own path to measure.
    """

    def __init__(self, *, thread_hop: bool) -> None:
        super().__init__(observer=_route_docker_call)
        self.thread_hop = thread_hop
        # Calls arrive from several worker threads at once.
        self._lock = threading.Lock()
        self._by_name: dict[str, dict[str, Any]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}

    async def _run_blocking(self, work: Callable[[], Any]) -> Any:
        if self.thread_hop:
            return await super()._run_blocking(work)
        await anyio.lowlevel.checkpoint()
        return work()

    def _blocking(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "ping":
            return True
        if method == "inspect_image":
            return {"Id": "sha256:" + "0" * 64, "RepoDigests": [], "Config": {}}
        with self._lock:
            return self._container_call(method, *args, **kwargs)

    def _container_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "inspect_container":
            container = self._by_name.get(args[0]) or self._by_id.get(args[0])
            if container is None:
                raise DockerNotFound(f"No such container: {args[0]}")
            return container
        if method == "create_container_from_config":
            body, name = args[0], kwargs["name"]
            container_id = secrets.token_hex(32)
            container = {
                "Id": container_id,
                "Name": "/" + name,
                "Config": {"Labels": body.get("Labels") or {}},
                "State": {"Running": False},
            }
            self._by_name[name] = self._by_id[container_id] = container
            return {"Id": container_id, "Warnings": []}
        if method == "start":
            container = self._by_id.get(args[0])
            if container is None:
                raise DockerNotFound(f"No such container: {args[0]}")
            container["State"] = {"Running": True, "StartedAt": datetime.now(timezone.utc).isoformat()}
            return None
        raise NotImplementedError(f"FakeDocker does not handle {method}; the benchmark runs only start operations")


# A separate process that writes or reads the table like another service, counting
# "database is locked" errors. argv: mode (insert or read), database path, seconds between
# statements. It stops when its standard input closes and prints its counts as JSON.
CLIENT_SCRIPT = r"""
import json, sqlite3, sys, threading, time
mode, path, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
connection = sqlite3.connect(path, timeout=5.0, isolation_level=None)
counts = {"statements": 0, "locked": 0, "other_errors": 0, "max_wait_ms": 0.0}
while not done.is_set():
    started = time.monotonic()
    try:
        if mode == "insert":
            connection.execute(
                "INSERT INTO docker_operations (type, container, image, host) VALUES ('start', 'elsewhere', 'x', 'dwbench-elsewhere')"
            )
        else:
            connection.execute("SELECT status, count(*) FROM docker_operations GROUP BY status").fetchall()
        counts["statements"] += 1
    except sqlite3.OperationalError as exc:
        key = "locked" if "locked" in str(exc) or "busy" in str(exc) else "other_errors"
        counts[key] += 1
    counts["max_wait_ms"] = max(counts["max_wait_ms"], (time.monotonic() - started) * 1000)
    done.wait(interval)
print(json.dumps(counts))
"""


class TableClient:
    """A `CLIENT_SCRIPT` subprocess."""

    def __init__(self, mode: str, path: Path, interval: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLIENT_SCRIPT, mode, str(path), str(interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def finish(self) -> dict[str, Any]:
        output, _ = self.process.communicate(b"", timeout=30)
        return json.loads(output)


# Benchmarks


@benchmark("pickup", "Pick-up latency")
def bench_pickup(options: RunOptions) -> list[Figure]:
    """Measure how soon `dockwright run`, at the default poll interval, claims rows that another process inserts.

    Each row is a `start` of a container that already runs from the same spec. It is claimed
    like any other row and completes after one container inspect. So each row is done long
    before the writer inserts the next, and no row waits for a free slot or for an earlier
    row on its container.
    """
    samples = 50 if options.quick else 250
    api = docker.APIClient(version="auto")
    name = unique_names("pickup")
    workdir = options.workdir / "pickup"

    try:
        with DaemonProcess(workdir) as daemon:
            connection = connect_table(daemon.database)
            first = connection.execute(
                "INSERT INTO docker_operations (type, container, image) VALUES ('start', ?, ?)", (name, TEST_IMAGE)
            ).lastrowid
            row = wait_terminal(connection, first, timeout=60)
            if row["status"] != "completed":
                raise RuntimeError(f"the first start of {name} did not complete: {row['error']}")

            # The writer inserts at random gaps of 50 to 150 ms, so insert times do not line
            # up with the controller's 10 ms change checks.
            writer = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import random, sqlite3, sys, time\n"
                    "c = sqlite3.connect(sys.argv[1], timeout=5.0, isolation_level=None)\n"
                    "for _ in range(int(sys.argv[2])):\n"
                    "    time.sleep(random.uniform(0.05, 0.15))\n"
                    "    c.execute(\"INSERT INTO docker_operations (type, container, image) VALUES ('start', ?, ?)\", (sys.argv[3], sys.argv[4]))\n",
                    str(daemon.database),
                    str(samples),
                    name,
                    TEST_IMAGE,
                ],
                check=True,
            )
            del writer
            last = connection.execute("SELECT max(id) FROM docker_operations").fetchone()[0]
            wait_terminal(connection, last, timeout=60)
            rows = connection.execute(
                f"SELECT status, result, {SQL_MS.format(end='started_at', start='created_at')} AS pickup_ms "
                "FROM docker_operations WHERE id > ?",
                (first,),
            ).fetchall()
            connection.close()
    finally:
        remove_containers(api, [name])
        api.close()

    outcomes = [json.loads(row["result"] or "{}").get("outcome") for row in rows]
    if len(rows) != samples or any(outcome != "already_running" for outcome in outcomes):
        raise RuntimeError(f"expected {samples} already_running outcomes, got {outcomes[:5]}...")
    latencies = [row["pickup_ms"] for row in rows]
    method = (
        f"{samples} `start` rows of an already running container inserted by a separate "
        "sqlite3 process at random gaps of 50-150 ms; `started_at - created_at` from the table; "
        "`dockwright run`, poll interval 1 s"
    )
    p50 = percentile(latencies, 0.50)
    return [
        Figure("pick-up latency p50", p50, "ms", "<= 50 ms", p50 <= 50, method),
        Figure("pick-up latency p99", percentile(latencies, 0.99), "ms", "-", None, method),
        Figure("pick-up latency max", max(latencies), "ms", "-", None, method),
    ]


@dataclass
class ThroughputRun:
    """The outcome of one throughput run."""

    ops_per_second: float
    cpu_ms_per_op: float
    locked: int
    log_rows: int
    wall_seconds: float
    writer: dict[str, Any]
    reader: dict[str, Any]


def _throughput_run(workdir: Path, count: int, *, thread_hop: bool) -> ThroughputRun:
    """Serve `count` pre-inserted `start` rows with `FakeDocker` while two other processes use the table."""
    workdir.mkdir(parents=True)
    path = workdir / "dockwright.db"
    log_path = workdir / "controller.log"
    create_schema(path)

    connection = connect_table(path)
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO docker_operations (type, container, image) VALUES ('start', ?, ?)",
        [(f"{NAME_PREFIX}tp-{index}", TEST_IMAGE) for index in range(count)],
    )
    connection.execute("COMMIT")

    # The controller logs JSON at INFO, as the daemon does by default, into a file.
    saved_stderr = sys.stderr
    log_file = log_path.open("w")
    sys.stderr = log_file
    configure_logging(log_format="json", level="INFO")
    sys.stderr = saved_stderr

    settings = Settings(database_url=f"sqlite:///{path}", log_format="json")
    controller = Controller(settings, docker=FakeDocker(thread_hop=thread_hop))
    controller.acquire()
    writer = TableClient("insert", path, 0.01)
    reader = TableClient("read", path, 0.01)

    async def serve() -> float:
        async with anyio.create_task_group() as group:
            await group.start(controller.run)
            started = time.monotonic()
            while True:
                await anyio.sleep(0.02)
                done = await anyio.to_thread.run_sync(
                    lambda: connection.execute(
                        "SELECT count(*) FROM docker_operations WHERE host = 'local' AND status IN ('completed', 'failed', 'cancelled')"
                    ).fetchone()[0]
                )
                if done >= count:
                    break
            elapsed = time.monotonic() - started
            controller.stopping = True
            controller.wake()
        return elapsed

    cpu_started = time.process_time()
    try:
        wall_seconds = anyio.run(serve)
    finally:
        cpu_seconds = time.process_time() - cpu_started
        controller.close()
        writer_counts = writer.finish()
        reader_counts = reader.finish()
        # Later in-process benchmarks must not log into the closed file.
        configure_logging(log_format="json", level="ERROR")
        log_file.close()

    statuses = dict(
        connection.execute("SELECT status, count(*) FROM docker_operations WHERE host = 'local' GROUP BY status").fetchall()
    )
    span_ms = connection.execute(
        f"SELECT {SQL_MS.format(end='max(finished_at)', start='min(started_at)')} FROM docker_operations WHERE host = 'local'"
    ).fetchone()[0]
    log_rows = connection.execute("SELECT count(*) FROM docker_operation_logs").fetchone()[0]
    connection.close()
    if statuses.get("completed") != count:
        raise RuntimeError(f"expected {count} completed rows, got {statuses}")

    controller_locked = sum(1 for line in log_path.read_text().splitlines() if "locked" in line)
    return ThroughputRun(
        ops_per_second=count / (span_ms / 1000),
        cpu_ms_per_op=cpu_seconds * 1000 / count,
        locked=writer_counts["locked"] + reader_counts["locked"] + controller_locked,
        log_rows=log_rows,
        wall_seconds=wall_seconds,
        writer=writer_counts,
        reader=reader_counts,
    )


@benchmark("throughput", "Throughput with Docker stubbed")
def bench_throughput(options: RunOptions) -> list[Figure]:
    """Measure the claim, progress, log and finish path on pre-inserted `start` rows, with Docker stubbed.

    The target run's `FakeDocker` returns on the event loop, so the figure is the
    controller's own path. A second run keeps the worker-thread hop that every real engine
    request pays, to show what that hop costs when the engine itself costs nothing.
    """
    count = 1000 if options.quick else 5000
    # The machine is shared, and one run's rate moves by a fifth with its neighbours' load;
    # the median of three runs is the figure.
    runs = sorted(
        (_throughput_run(options.workdir / f"throughput-{number}", count, thread_hop=False) for number in range(3)),
        key=lambda run: run.ops_per_second,
    )
    stubbed = runs[1]
    hopping = _throughput_run(options.workdir / "throughput-hop", count, thread_hop=True)

    concurrency = Settings().concurrency
    method = (
        f"{count} `start` rows inserted beforehand, `Controller(settings, docker=FakeDocker(thread_hop=False))` "
        f"in-process, concurrency {concurrency}, JSON logs at INFO into a file; rate = rows / "
        f"(last `finished_at` - first `started_at`), median of 3 runs "
        f"({', '.join(f'{run.ops_per_second:.0f}' for run in runs)} ops/s); "
        f"{stubbed.log_rows} log rows written per run"
    )
    cpu_method = "process CPU time (all threads) of the median run, divided by the rows"
    hop_method = (
        "the same run with `FakeDocker(thread_hop=True)`: each of the 5 Docker calls of a start "
        "returns through a worker thread, as a real request does; CPU per operation "
        f"{hopping.cpu_ms_per_op:.2f} ms"
    )
    locked = sum(run.locked for run in runs) + hopping.locked
    lock_method = (
        "during all four runs a separate process inserted a row every 10 ms "
        f"({sum(run.writer['statements'] for run in runs) + hopping.writer['statements']} inserts) and another read "
        "the table every 10 ms, both sqlite3 with a 5 s busy timeout; OperationalError counted "
        "in both and `locked` in the controller's log"
    )
    longest = max(run.writer["max_wait_ms"] for run in [*runs, hopping])
    return [
        Figure("throughput", stubbed.ops_per_second, "ops/s", ">= 1000 ops/s", stubbed.ops_per_second >= 1000, method),
        Figure("CPU per operation", stubbed.cpu_ms_per_op, "ms", "-", None, cpu_method),
        Figure("throughput, Docker calls through a worker thread", hopping.ops_per_second, "ops/s", "-", None, hop_method),
        Figure("'database is locked' errors", locked, "", "0", locked == 0, lock_method),
        Figure("longest insert of another process", longest, "ms", "-", None, lock_method),
    ]


@benchmark("docker_overhead", "Start overhead over direct Docker calls")
def bench_docker_overhead(options: RunOptions) -> list[Figure]:
    """Compare a real `start` through the daemon with the same docker-py calls made directly.

    The direct run makes the requests the operation makes for a present image and a new
    name: inspect the container (not found), inspect the image, create with the same body,
    start, inspect the container. The two alternate, and which goes first alternates too.
    """
    runs = 4 if options.quick else 15
    api = docker.APIClient(version="auto")
    operation_ms: list[float] = []
    direct_ms: list[float] = []
    created: list[str] = []

    def direct_start(name: str) -> float:
        body = plan_service({}, name=name, image=TEST_IMAGE).body
        started = time.perf_counter()
        try:
            api.inspect_container(name)
        except docker.errors.NotFound:
            pass
        api.inspect_image(TEST_IMAGE)
        container_id = api.create_container_from_config(body, name=name)["Id"]
        api.start(container_id)
        state = api.inspect_container(name)["State"]
        elapsed = (time.perf_counter() - started) * 1000
        if not state["Running"]:
            raise RuntimeError(f"direct start of {name} does not run: {state}")
        return elapsed

    def operation_start(connection: sqlite3.Connection, name: str) -> float:
        op_id = connection.execute(
            "INSERT INTO docker_operations (type, container, image, options) VALUES ('start', ?, ?, ?)",
            (name, TEST_IMAGE, json.dumps({"pull": "missing"})),
        ).lastrowid
        row = wait_terminal(connection, op_id, timeout=60)
        if row["status"] != "completed":
            raise RuntimeError(f"operation {op_id} on {name} ended {row['status']}: {row['error']}")
        return connection.execute(
            f"SELECT {SQL_MS.format(end='finished_at', start='started_at')} FROM docker_operations WHERE id = ?",
            (op_id,),
        ).fetchone()[0]

    try:
        with DaemonProcess(options.workdir / "docker_overhead") as daemon:
            connection = connect_table(daemon.database)
            # One unmeasured run of each warms up the engine's and the daemon's caches.
            for index in range(-1, runs):
                names = (unique_names("direct"), unique_names("op"))
                created.extend(names)
                if index % 2:
                    direct = direct_start(names[0])
                    operation = operation_start(connection, names[1])
                else:
                    operation = operation_start(connection, names[1])
                    direct = direct_start(names[0])
                remove_containers(api, list(names))
                if index >= 0:
                    direct_ms.append(direct)
                    operation_ms.append(operation)
            connection.close()
    finally:
        remove_containers(api, created)
        api.close()

    ratio = statistics.median(operation_ms) / statistics.median(direct_ms)
    method = (
        f"median of {runs} interleaved runs each: `start` of {TEST_IMAGE} (pull policy missing) "
        "through `dockwright run`, `finished_at - started_at` from the table, against the same "
        "docker-py calls made directly"
    )
    return [
        Figure("start through dockwright, median", statistics.median(operation_ms), "ms", "-", None, method),
        Figure("direct docker-py calls, median", statistics.median(direct_ms), "ms", "-", None, method),
        Figure("ratio", ratio, "", "<= 1.10", ratio <= 1.10, method),
    ]


@benchmark("memory", "Memory of the idle daemon")
def bench_memory(options: RunOptions) -> list[Figure]:
    """Measure the resident memory of `dockwright run` 5 s after it reports ready, and its CPU use while idle.

    The first start on a new file runs the migrations and so loads alembic; the figure that
    counts is the steady state, a daemon started on an up-to-date database.
    """
    settle = 5.0
    workdir = options.workdir / "memory"
    with DaemonProcess(workdir) as daemon:
        assert daemon.process is not None
        time.sleep(settle)
        first_rss_mb = _rss_mb(daemon.process.pid)

    with DaemonProcess(workdir) as daemon:
        assert daemon.process is not None
        pid = daemon.process.pid
        time.sleep(settle)
        cpu_before = _cpu_seconds(pid)
        time.sleep(settle)
        cpu_share = (_cpu_seconds(pid) - cpu_before) / settle * 100
        rss_mb = _rss_mb(pid)
    method = f"VmRSS from /proc/PID/status of `dockwright run` on a migrated database, {settle:.0f} s after `controller.ready`"
    first_method = "the same for the first start on a new file, which runs the migrations"
    cpu_method = f"utime + stime from /proc/PID/stat over the next {settle:.0f} s, no rows in the table"
    return [
        Figure("resident memory", rss_mb, "MB", "<= 80 MB", rss_mb <= 80, method),
        Figure("resident memory, first start", first_rss_mb, "MB", "-", None, first_method),
        Figure("CPU while idle", cpu_share, "% of one core", "-", None, cpu_method),
    ]


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@benchmark("update_checks", "Up-to-date update_image checks against docker pull")
def bench_update(options: RunOptions) -> list[Figure]:
    """Run `bench_update_checks` of hack/bench_update.py, which documents the method."""
    from bench_update import TARGET_RATIO, bench_update_checks

    count = 40 if options.quick else 200
    # The operations log JSON at INFO into a file, as the daemon does off a terminal.
    log_path = options.workdir / "update-checks.log"
    saved_stderr = sys.stderr
    with log_path.open("w") as log_file:
        sys.stderr = log_file
        configure_logging(log_format="json", level="INFO")
        sys.stderr = saved_stderr
        try:
            result = bench_update_checks(count=count, pulls=20, workdir=options.workdir)
        finally:
            configure_logging(log_format="json", level="ERROR")
    requests = result["requests"]
    other_requests = sum(number for kind, number in requests.items() if kind != "manifest")
    method = (
        f"{count} images in localhost:5001, one tag each, all pulled; one update_image per tag through "
        f"`execute` (the whole operation, its database writes included), one at a time; "
        f"{result['pulls']} pulls of the same tags each way, half before the checks and half after; "
        f"registry requests {requests}"
    )
    cli_ratio = result["cli_ratio"]
    return [
        Figure("time per check", result["check_mean_ms"], "ms", "-", None, method),
        Figure("up-to-date `docker pull -q` (CLI)", result["cli_pull_mean_ms"], "ms", "-", None, method),
        Figure("check / `docker pull`", cli_ratio, "", f"<= {TARGET_RATIO}", cli_ratio <= TARGET_RATIO, method),
        Figure("up-to-date pull through docker-py, no CLI start", result["pull_mean_ms"], "ms", "-", None, method),
        Figure("check / docker-py pull", result["ratio"], "", "-", None, method),
        Figure("non-manifest registry requests", other_requests, "", "0", other_requests == 0, method),
    ]

@benchmark("recreate_downtime", "Recreate downtime against the naive sequence and the floor")
def bench_recreate(options: RunOptions) -> list[Figure]:
    """Run `bench_recreate_downtime` of hack/bench_recreate.py, which documents the method."""
    from bench_recreate import TARGET_RATIO, bench_recreate_downtime

    result = bench_recreate_downtime(runs=3 if options.quick else 5, workdir=options.workdir)
    medians = result["median_seconds"]
    method = (
        f"time 127.0.0.1:PORT of the web image does not answer an HTTP GET (probed every 3 ms), median of "
        f"{result['runs']} runs each, run in turn on one container"
    )
    ratio = result["ratio_to_floor"]
    gate_margin = result["gate_after_service_min"]
    return [
        Figure("dockwright recreate", medians["dockwright"] * 1000, "ms", "-", None, method),
        Figure("naive stop, rm, create, start", medians["naive"] * 1000, "ms", "-", None, method),
        Figure("floor: stop, start a created one", medians["floor"] * 1000, "ms", "-", None, method),
        Figure("dockwright / floor", ratio, "", f"<= {TARGET_RATIO}", ratio <= TARGET_RATIO, method),
        Figure("gate end after service back (min)", gate_margin, "s", "> 0", gate_margin > 0, method),
    ]



def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5), utime and stime, counted from the state field (3).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The results page


PAGE_HEADER = """# Benchmarks

Written by `hack/bench.py`; each section is replaced when its benchmark runs again
(`.venv/bin/python hack/bench.py --only NAME`), so sections may come from different runs and
state their own machine, date and command. All figures use SQLite. A figure without a target
is context for the others.
"""

SECTION_PATTERN = re.compile(r"<!-- bench:([\w-]+):begin -->\n(.*?)<!-- bench:\1:end -->\n?", re.DOTALL)


def machine_description() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (`nproc`), {cpu}; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def render_section(item: Benchmark, figures: list[Figure], command: str, load: float) -> str:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    description = " ".join(inspect.cleandoc(item.run.__doc__ or "").split())
    lines = [
        f"## {item.title}",
        "",
        description,
        "",
        f"Machine: {machine_description()}; load average {load:.1f} when the benchmark started. "
        f"Date: {date}. Command: `{command}`.",
        "",
        "| figure | value | target | result | method |",
        "| --- | --- | --- | --- | --- |",
    ]
    previous_method = None
    for figure in figures:
        method = "as above" if figure.method == previous_method else figure.method
        previous_method = figure.method
        lines.append(f"| {figure.name} | {figure.shown_value()} | {figure.target} | {figure.verdict()} | {method} |")
    return "\n".join(lines) + "\n"


def write_results(sections: dict[str, str]) -> None:
    """Replace the sections that ran and keep the others, in registry order."""
    kept: dict[str, str] = {}
    if RESULTS_PATH.exists():
        kept = {match.group(1): match.group(2) for match in SECTION_PATTERN.finditer(RESULTS_PATH.read_text())}
    kept.update(sections)
    order = [name for name in BENCHMARKS if name in kept] + [name for name in kept if name not in BENCHMARKS]
    parts = [PAGE_HEADER]
    for name in order:
        parts.append(f"<!-- bench:{name}:begin -->\n{kept[name]}<!-- bench:{name}:end -->\n")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text("\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the controller benchmarks and write docs/benchmarks.md.")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="take fewer samples, to check that the script works")
    args = parser.parse_args(argv)

    command = " ".join([".venv/bin/python hack/bench.py", *(argv if argv is not None else sys.argv[1:])])
    names = args.only or list(BENCHMARKS)
    api = docker.APIClient(version="auto")
    remove_leftovers(api)
    api.close()

    sections: dict[str, str] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="dwbench-") as tmp:
        for name in names:
            item = BENCHMARKS[name]
            print(f"== {item.title} ({name})", flush=True)
            load = os.getloadavg()[0]
            try:
                figures = item.run(RunOptions(quick=args.quick, workdir=Path(tmp)))
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others
                print(f"  FAILED: {type(exc).__name__}: {exc}; its section keeps its earlier figures", flush=True)
                failed = True
                continue
            for figure in figures:
                print(f"  {figure.name}: {figure.shown_value()} (target {figure.target}) {figure.verdict()}", flush=True)
                failed = failed or figure.passed is False
            sections[name] = render_section(item, figures, command, load)

    write_results(sections)
    print(f"Results written to {RESULTS_PATH.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
