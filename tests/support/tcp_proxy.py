"""Thread-based stream forwarders that let a test slow down or cut a connection.

- `TcpProxy` listens on 127.0.0.1 (an ephemeral port unless given) and forwards each
  connection to a target port on 127.0.0.1, for example a registry, so a pull through
  `127.0.0.1:<proxy port>` can be throttled with `bytes_per_second`.
- `UnixSocketProxy` listens on a socket path and forwards to the engine's socket, so a
  daemon pointed at `unix://<path>` loses "the engine" on `stop()` and gets it back on
  `start()`, while the shared engine keeps running.

Both run in threads, so they work beside an event loop in the same process. `stop()` closes
the listener and every open connection, and a stopped proxy can be started again on the same
address. `cut()` and `restore()` simulate an outage while the listener stays. Both proxies are
context managers.
"""

from __future__ import annotations

import os
import socket
import threading
import time

CHUNK_BYTES = 64 * 1024
# How often the accept loop checks for stop(), in seconds.
ACCEPT_POLL_SECONDS = 0.1


class _Pair:
    """A forwarded connection: the client's socket, the target's, and how many directions ended."""

    def __init__(self, client: socket.socket, target: socket.socket) -> None:
        self.sockets = (client, target)
        self.directions_done = 0


class _StreamProxy:
    """The accept loop, the forwarding threads and the rate limit shared by both proxies."""

    def __init__(self, *, bytes_per_second: float | None = None) -> None:
        self.bytes_per_second = bytes_per_second
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._pairs: set[_Pair] = set()
        self._forward_threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._cut = threading.Event()
        # The earliest time at which the rate limit lets the next chunk through.
        self._next_send_time = 0.0

    # Subclasses create the listening socket and the connection to the target.
    def _listen(self) -> socket.socket:
        raise NotImplementedError

    def _connect_target(self) -> socket.socket:
        raise NotImplementedError

    def _after_close(self) -> None:
        pass

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def open_connections(self) -> int:
        """The number of forwarded connections that are still open."""
        with self._lock:
            return len(self._pairs)

    def start(self) -> _StreamProxy:
        """Start listening and forwarding, and return the proxy itself."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._stopping.clear()
        self._listener = self._listen()
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(self._listener,), daemon=True, name=f"{self!r} accept"
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every forwarded connection, and wait for the threads."""
        if not self.running:
            return

        # Stop accepting first, so no connection is added while the others are closed.
        self._stopping.set()
        assert self._accept_thread is not None and self._listener is not None
        self._accept_thread.join()
        self._listener.close()
        self._listener = None
        self._after_close()

        self._close_pairs()
        for thread in self._forward_threads:
            thread.join(timeout=5)
        self._forward_threads = []

    def cut(self) -> None:
        """Close every forwarded connection and close new ones right after accepting them.

        Unlike `stop()`, the listener stays, so clients see their connections reset instead
        of a refused connect. Prefer this to simulate an outage for docker-py: its Unix
        socket transport does not close its socket when a connect fails, and the test
        settings turn that ResourceWarning into an error.
        """
        self._cut.set()
        self._close_pairs()

    def restore(self) -> None:
        """Forward new connections again after `cut()`."""
        self._cut.clear()

    def __enter__(self) -> _StreamProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _close_pairs(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            for sock in pair.sockets:
                _close(sock)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            if self._cut.is_set():
                _close(client)
                continue

            try:
                target = self._connect_target()
            except OSError:
                # The target is down, so the client sees its connection closed, as with a dead server.
                _close(client)
                continue

            pair = _Pair(client, target)
            with self._lock:
                self._pairs.add(pair)
            for source, destination in ((client, target), (target, client)):
                thread = threading.Thread(
                    target=self._forward, args=(pair, source, destination), daemon=True, name=f"{self!r} forward"
                )
                self._forward_threads.append(thread)
                thread.start()

    def _forward(self, pair: _Pair, source: socket.socket, destination: socket.socket) -> None:
        """Copy bytes from `source` to `destination` until EOF, then pass the EOF on."""
        try:
            while True:
                data = source.recv(self._chunk_size())
                if not data:
                    break
                self._throttle(len(data))
                destination.sendall(data)
            destination.shutdown(socket.SHUT_WR)
        except OSError:
            # The peer or stop() closed a socket, so close the pair and both ends see it.
            _close(source)
            _close(destination)
        finally:
            with self._lock:
                pair.directions_done += 1
                finished = pair.directions_done == 2
                if finished:
                    self._pairs.discard(pair)
            if finished:
                for sock in pair.sockets:
                    _close(sock)

    def _chunk_size(self) -> int:
        if not self.bytes_per_second:
            return CHUNK_BYTES
        # About ten chunks a second, so a limited transfer flows steadily.
        return max(1024, min(CHUNK_BYTES, int(self.bytes_per_second / 10)))

    def _throttle(self, size: int) -> None:
        """Sleep so the bytes through all connections together stay within `bytes_per_second`."""
        rate = self.bytes_per_second
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_send_time)
            self._next_send_time = start + size / rate
        delay = start - now
        if delay > 0:
            time.sleep(delay)


class TcpProxy(_StreamProxy):
    """Forward connections from 127.0.0.1:`port` to 127.0.0.1:`target_port`.

    `port=0` picks an ephemeral port on the first start and keeps it across restarts.
    `bytes_per_second` (None for no limit) caps both directions together and can be changed
    while the proxy runs.
    """

    def __init__(self, target_port: int, *, port: int = 0, bytes_per_second: float | None = None) -> None:
        super().__init__(bytes_per_second=bytes_per_second)
        self.target_port = target_port
        self.port = port

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT`, usable in an image reference or a URL."""
        return f"127.0.0.1:{self.port}"

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        return listener

    def _connect_target(self) -> socket.socket:
        target = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        target.settimeout(None)
        return target

    def __repr__(self) -> str:
        return f"TcpProxy(127.0.0.1:{self.port} -> 127.0.0.1:{self.target_port})"


class UnixSocketProxy(_StreamProxy):
    """Forward connections on the socket file `path` to `target_path`, the engine's socket.

    `stop()` removes the socket file, so a client sees the same error as with a stopped
    engine. Point docker-py or dockwright at `proxy.url`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        target_path: str = "/var/run/docker.sock",
        bytes_per_second: float | None = None,
    ) -> None:
        super().__init__(bytes_per_second=bytes_per_second)
        self.path = os.fspath(path)
        self.target_path = target_path

    @property
    def url(self) -> str:
        """`unix://PATH`, the form DOCKER_HOST and docker-py's base_url take."""
        return f"unix://{self.path}"

    def _listen(self) -> socket.socket:
        if os.path.exists(self.path):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        return listener

    def _connect_target(self) -> socket.socket:
        target = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            target.settimeout(5)
            target.connect(self.target_path)
            target.settimeout(None)
        except OSError:
            target.close()
            raise
        return target

    def _after_close(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __repr__(self) -> str:
        return f"UnixSocketProxy({self.path} -> {self.target_path})"


def _close(sock: socket.socket) -> None:
    """Shut down and close `sock`, waking any thread blocked on it; ignore a closed socket."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
