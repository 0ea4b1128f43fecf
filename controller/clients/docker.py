"""The Docker Engine client: docker-py's low-level API, always called in worker threads.

Each call is timed, mapped onto the two failure kinds of `controller.errors`, and reported to
an optional observer (the operation log and the metrics), so callers get the equivalent
docker CLI command and the duration recorded for free.

Engine errors are classified as follows: a connection or timeout error is transient
(`EngineUnavailable`, the engine may come back); 404 is `DockerNotFound` and 409 is
`DockerConflict` (both permanent); a 500 whose text shows that the engine could not reach a
registry is transient; every other API error is permanent.
"""

from __future__ import annotations

import functools
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import anyio
import anyio.to_thread
import docker
import docker.errors
import requests.exceptions

from controller.errors import PermanentError, TransientError

# Fragments of engine error texts that mean the registry could not be reached (engine 20.10).
_REGISTRY_NETWORK_ERRORS = (
    "connection refused",
    "i/o timeout",
    "timeout exceeded",
    "tls handshake timeout",
    "no such host",
    "connection reset",
    "service unavailable",
    "too many requests",
    "toomanyrequests",
    "502 bad gateway",
    "503 service",
    "504 gateway",
    "eof",
)


class EngineUnavailable(TransientError):
    """The Docker engine did not respond."""


class DockerNotFound(PermanentError):
    """The engine returned 404: no such container, image, network or volume."""


class DockerConflict(PermanentError):
    """The engine returned 409: a name is taken, or the object is in use."""


class PullAborted(Exception):
    """A pull was stopped on purpose (cancellation or shutdown)."""


class CallObserver(Protocol):
    def __call__(
        self, *, call: str, cli: str | None, seconds: float, error: BaseException | None
    ) -> None: ...


@dataclass
class PullProgress:
    """Byte counts of one pull, fed from the engine's progress stream (thread-safe)."""

    downloaded: dict[str, int] = field(default_factory=dict)
    extracted: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    events: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, event: dict[str, Any]) -> None:
        layer = event.get("id")
        status = str(event.get("status", ""))
        detail = event.get("progressDetail") or {}
        with self.lock:
            self.events += 1
            if not layer or ":" in layer and not status.startswith(("Download", "Extract", "Pull", "Already", "Verifying", "Waiting")):
                return
            total = detail.get("total")
            current = detail.get("current")
            if status == "Downloading" and total:
                self.totals[layer] = int(total)
                self.downloaded[layer] = int(current or 0)
            elif status in ("Download complete", "Verifying Checksum"):
                if layer in self.totals:
                    self.downloaded[layer] = self.totals[layer]
            elif status == "Extracting" and total:
                self.totals.setdefault(layer, int(total))
                self.downloaded[layer] = self.totals[layer]
                self.extracted[layer] = int(current or 0)
            elif status in ("Pull complete", "Already exists"):
                self.finished.add(layer)
                if layer in self.totals:
                    self.downloaded[layer] = self.totals[layer]
                    self.extracted[layer] = self.totals[layer]

    def fraction(self) -> float:
        """Return the share of the pull done, from 0 to 1: downloads weigh 3/4, extraction 1/4."""
        with self.lock:
            total = sum(self.totals.values())
            if total == 0:
                return 0.0
            downloaded = sum(self.downloaded.values())
            extracted = sum(self.extracted.values())
        return min(1.0, (0.75 * downloaded + 0.25 * extracted) / total)

    def bytes_downloaded(self) -> int:
        with self.lock:
            return sum(self.downloaded.values())


def _classify(call: str, exc: BaseException) -> BaseException:
    """Map a docker-py or requests exception to a dockwright error."""
    if isinstance(exc, (PermanentError, TransientError, PullAborted)):
        return exc
    if isinstance(exc, docker.errors.NotFound):
        return DockerNotFound(_explain(exc))
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        text = _explain(exc)
        if status == 409:
            return DockerConflict(text)
        if status >= 500 and any(fragment in text.lower() for fragment in _REGISTRY_NETWORK_ERRORS):
            return TransientError(f"{call}: {text}")
        if status >= 500 and "is restarting" in text.lower():
            return TransientError(f"{call}: {text}")
        return PermanentError(f"{call}: {text}")
    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
        return EngineUnavailable(f"Docker engine unreachable during {call}: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        return EngineUnavailable(f"Docker engine did not answer {call} in time: {exc}")
    if isinstance(exc, docker.errors.DockerException):
        text = str(exc)
        if "Error while fetching server API version" in text or "Connection" in text:
            return EngineUnavailable(f"Docker engine unreachable: {text}")
        return PermanentError(f"{call}: {text}")
    return exc


def _explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


class DockerClient:
    """docker-py's `APIClient`, awaited; each method is one engine request."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_threads: int = 8,
        observer: CallObserver | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.observer = observer
        self._limiter = anyio.CapacityLimiter(max_threads)
        self._api: docker.APIClient | None = None
        self._api_lock = threading.Lock()

    def endpoint(self) -> str:
        """Return the engine address, for messages."""
        if self.base_url:
            return self.base_url
        kwargs = docker.utils.kwargs_from_env()
        return str(kwargs.get("base_url") or "unix:///var/run/docker.sock")

    def _client(self) -> docker.APIClient:
        # Created on first use, because `version="auto"` queries the engine, which may be down at start.
        with self._api_lock:
            if self._api is None:
                if self.base_url:
                    self._api = docker.APIClient(base_url=self.base_url, version="auto", timeout=int(self.timeout))
                else:
                    kwargs = docker.utils.kwargs_from_env()
                    self._api = docker.APIClient(version="auto", timeout=int(self.timeout), **kwargs)
                if self._api.base_url.startswith("http+docker://"):
                    # A local socket (unix, npipe, ssh) is never reached through an HTTP proxy,
                    # and reading the proxy variables took a quarter of each request's time.
                    self._api.trust_env = False
            return self._api

    def _blocking(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._client(), method)(*args, **kwargs)

    async def _run_blocking(self, work: Callable[[], Any]) -> Any:
        """Run one blocking docker-py request in a worker thread."""
        return await anyio.to_thread.run_sync(work, limiter=self._limiter)

    async def call(self, method: str, *args: Any, cli: str | None = None, **kwargs: Any) -> Any:
        """Run `APIClient.<method>(*args, **kwargs)` in a worker thread.

        Raises the classified error (see the module docstring).
        """
        started = time.monotonic()
        error: BaseException | None = None
        try:
            return await self._run_blocking(functools.partial(self._blocking, method, *args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - classified and re-raised
            error = _classify(method, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            if self.observer is not None:
                self.observer(call=method, cli=cli, seconds=time.monotonic() - started, error=error)

    async def ping(self) -> bool:
        """Return True when the engine responds to a ping, False on any dockwright error."""
        try:
            await self.call("ping")
        except (TransientError, PermanentError):
            return False
        return True

    async def inspect_container(self, name: str) -> dict[str, Any] | None:
        """Return `docker inspect` of a container, or None when there is none by that name."""
        try:
            return await self.call("inspect_container", name, cli=shlex.join(["docker", "container", "inspect", name]))
        except DockerNotFound:
            return None

    async def inspect_image(self, reference: str) -> dict[str, Any] | None:
        try:
            return await self.call("inspect_image", reference, cli=shlex.join(["docker", "image", "inspect", reference]))
        except DockerNotFound:
            return None

    async def pull(
        self,
        repository: str,
        tag: str,
        *,
        auth_config: dict[str, str] | None = None,
        progress: PullProgress,
        cli: str | None = None,
    ) -> None:
        """Pull `repository:tag` (tag may be a digest), feeding `progress` from the stream.

        Any error in the stream fails the pull. Cancelling the awaiting task aborts the pull
        at the next stream event.
        """
        abort = threading.Event()

        def blocking_pull() -> None:
            stream = self._client().pull(
                repository, tag=tag, stream=True, decode=True, auth_config=auth_config
            )
            try:
                for event in stream:
                    if abort.is_set():
                        raise PullAborted(f"pull of {repository}:{tag} aborted")
                    if "error" in event or "errorDetail" in event:
                        detail = event.get("errorDetail") or {}
                        message = detail.get("message") or event.get("error")
                        raise _pull_error(repository, tag, str(message))
                    progress.feed(event)
            finally:
                stream.close()

        started = time.monotonic()
        error: BaseException | None = None
        try:
            await anyio.to_thread.run_sync(blocking_pull, limiter=self._limiter, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            abort.set()
            error = PullAborted("cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - classified and re-raised
            if isinstance(exc, docker.errors.APIError) and not isinstance(exc, docker.errors.NotFound):
                # The engine refused the pull before streaming (a rejected login, say): word
                # it like an error inside the stream, naming the reference and what to check.
                error = _pull_error(repository, tag, _explain(exc))
            else:
                error = _classify("pull", exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            if self.observer is not None:
                self.observer(call="pull", cli=cli, seconds=time.monotonic() - started, error=error)


def _pull_error(repository: str, tag: str, message: str) -> Exception:
    """Classify an error reported inside the pull stream."""
    lowered = message.lower()
    reference = f"{repository}:{tag}" if not tag.startswith("sha256:") else f"{repository}@{tag}"
    if "manifest unknown" in lowered or "not found" in lowered or "does not exist" in lowered:
        return PermanentError(
            f"image {reference} not found in its registry ({message}); check the name and tag"
        )
    if "unauthorized" in lowered or "authentication required" in lowered or "denied" in lowered:
        return PermanentError(
            f"the registry refused access to {reference} ({message}); check the credentials "
            "in the Docker config file"
        )
    if any(fragment in lowered for fragment in _REGISTRY_NETWORK_ERRORS):
        return TransientError(f"pull of {reference} failed: {message}")
    return PermanentError(f"pull of {reference} failed: {message}")
