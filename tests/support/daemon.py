"""Run `dockwright run` as a subprocess against a SQLite file, as a user would.

`Daemon` starts the console script with settings in environment variables, waits for its
`controller.ready` log event, and stops it with a signal. `OperationsTable` writes and reads
rows with the standard library's sqlite3, the way another service would.
"""

from __future__ import annotations

import json
import os
import signal as signals
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKWRIGHT = str(Path(sys.executable).parent / "dockwright")
TERMINAL = ("completed", "failed", "cancelled")


class OperationsTable:
    """Plain-SQL access to a dockwright SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10)
        connection.row_factory = sqlite3.Row
        return connection

    def insert(self, **columns: Any) -> int:
        """Insert a row naming only the given columns; mappings are stored as JSON text."""
        values = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in columns.items()}
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.connect() as connection:
            cursor = connection.execute(
                f"INSERT INTO docker_operations ({names}) VALUES ({marks})", list(values.values())
            )
            return int(cursor.lastrowid)

    def execute(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with self.connect() as connection:
            return list(connection.execute(sql, params))

    def row(self, op_id: int) -> dict[str, Any]:
        rows = self.execute("SELECT * FROM docker_operations WHERE id = ?", op_id)
        assert rows, f"no operation {op_id}"
        return dict(rows[0])

    def logs(self, op_id: int) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT * FROM docker_operation_logs WHERE operation_id = ? ORDER BY id", op_id
        )
        return [dict(row) for row in rows]

    def wait(self, op_id: int, *, statuses: tuple[str, ...] = TERMINAL, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the row reaches one of `statuses`; fail with the row when it does not."""
        deadline = time.monotonic() + timeout
        row = self.row(op_id)
        while row["status"] not in statuses:
            if time.monotonic() > deadline:
                raise AssertionError(f"operation {op_id} not in {statuses} after {timeout} s: {row}")
            time.sleep(0.05)
            row = self.row(op_id)
        return row

    def result(self, op_id: int) -> dict[str, Any]:
        text = self.row(op_id)["result"]
        return json.loads(text) if text else {}


@dataclass
class Daemon:
    """A `dockwright run` subprocess with its own database file and log file."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        return self.workdir / "dockwright.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    @property
    def table(self) -> OperationsTable:
        return OperationsTable(self.database)

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKWRIGHT_")}
        env.update(
            DOCKWRIGHT_DATABASE_URL=f"sqlite:///{self.database}",
            DOCKWRIGHT_LOG_FORMAT="json",
            DOCKWRIGHT_LOG_LEVEL="DEBUG",
            DOCKWRIGHT_HTTP_BIND="127.0.0.1:0",
            DOCKWRIGHT_POLL_INTERVAL="1",
        )
        env.update(self.env)
        return env

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> "Daemon":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self._log_offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [DOCKWRIGHT, "run"], cwd=self.workdir, env=self.environment(), stdout=log, stderr=log
        )
        log.close()
        if wait:
            self.wait_for_event("controller.ready", timeout=timeout)
        return self

    def events(self) -> list[dict[str, Any]]:
        """Return the JSON log events written so far (all runs of this daemon)."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_event(self, event: str, *, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.events():
                if record.get("event") == event and all(record.get(k) == v for k, v in match.items()):
                    return record
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.process.returncode} before {event}:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no {event} event within {timeout} s:\n{self.log_text()[-3000:]}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, *, signum: int = signals.SIGTERM, timeout: float = 60.0) -> int:
        """Send `signum` and wait for the exit; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"daemon did not exit within {timeout} s of signal {signum}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_cli(*args: str, env: dict[str, str], timeout: float = 120.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dockwright ARGS` and capture its output."""
    return subprocess.run(
        [DOCKWRIGHT, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
