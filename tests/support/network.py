"""Loopback helpers for tests: a free port to publish on, and a patient HTTP GET."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, timeout: float = 20.0) -> str:
    """Fetch http://127.0.0.1:PORT/, retrying while the server comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
