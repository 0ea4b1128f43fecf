"""The one-controller-per-SQLite-file lock.

SQLite claims are only safe with a single controller per database file, so the daemon takes
an exclusive `flock` on `FILE.lock` next to the database. The kernel drops the lock when the
process dies, even by SIGKILL, so a crashed daemon never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os


class AlreadyRunning(Exception):
    """Another controller holds the lock of this database file."""


class InstanceLock:
    def __init__(self, database_path: str) -> None:
        self.path = database_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `AlreadyRunning` naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another dockwright controller (pid {holder}) already runs on database "
                f"{self.path[: -len('.lock')]}; stop it first, or use PostgreSQL to run "
                "several controllers"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
