"""Benchmark: the downtime of a recreate, against two references made with docker-py.

    .venv/bin/python hack/bench_recreate.py [--runs N]

The downtime is the time a port published on 127.0.0.1 does not answer an HTTP GET with the
page: a prober thread sends one every few milliseconds, and an outage lasts from the last
answered request before it to the first answered one after it. Three ways of replacing the
same container are measured in turn, each `runs` times, and their medians compared:

- dockwright: a `recreate` row carried out by `dockwright run` (a subprocess on a temporary
  SQLite file), pull policy `missing`, so the registry is not part of the figure;
- naive: stop, remove, create, start, with the image already pulled;
- floor: a container created beforehand, then stop the old one and start it.

The image is the shared web image (localhost:5001/dockwright-test/web:1), whose server stops
within about 0.2 s of SIGTERM. Needs the engine and the shared images (hack/engine.sh,
hack/registries.sh, hack/images.sh). Containers are named `dwbench-recreate-...` and removed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker
import docker.errors
import http.client

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.daemon import Daemon  # noqa: E402

WEB_IMAGE = "localhost:5001/dockwright-test/web:1"
PAGE = "web 1\n"
PROBE_INTERVAL = 0.003  # seconds between the end of one probe and the next
PROBE_TIMEOUT = 0.5  # seconds an HTTP GET may take before it counts as not answered
TARGET_RATIO = 1.10  # dockwright's median downtime over the floor's


class Prober:
    """A thread that GETs http://127.0.0.1:PORT/ continuously and records when it answered."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=PROBE_TIMEOUT) as response:
                    answered = response.read().decode() == PAGE
            except (OSError, http.client.HTTPException):
                answered = False
            self.samples.append((time.monotonic(), answered))
            time.sleep(PROBE_INTERVAL)

    def wait_answering(self, *, after: float, timeout: float = 60.0) -> float:
        """Wait for an answered probe sent after `after`; return its time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for moment, answered in reversed(list(self.samples)):
                if moment <= after:
                    break
                if answered:
                    return moment
            time.sleep(0.01)
        raise TimeoutError(f"no response with the page from {self.url} within {timeout:g} s")

    def outage(self, *, since: float) -> tuple[float, float]:
        """Return the longest time without an answer after `since` and the time it ended, in seconds."""
        window = [(moment, answered) for moment, answered in list(self.samples) if moment >= since]
        longest, ended = 0.0, since
        last_answer: float | None = None
        for moment, answered in window:
            if answered:
                if last_answer is not None and moment - last_answer > longest:
                    longest, ended = moment - last_answer, moment
                last_answer = moment
        return longest, ended


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _body(port: int) -> dict[str, Any]:
    return {
        "Image": WEB_IMAGE,
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}},
    }


def _naive(api: docker.APIClient, name: str, port: int) -> None:
    api.stop(name)
    api.remove_container(name)
    created = api.create_container_from_config(_body(port), name=name)
    api.start(created["Id"])


def _floor(api: docker.APIClient, name: str, port: int) -> None:
    # Preparation, outside the measured outage: the replacement exists before the stop.
    spare = api.create_container_from_config(_body(port), name=f"{name}-spare")["Id"]
    api.stop(name)
    api.start(spare)
    api.remove_container(name)
    api.rename(spare, name)


def _dockwright(daemon: Daemon, name: str) -> dict[str, Any]:
    op_id = daemon.table.insert(
        type="recreate",
        container=name,
        options=json.dumps({"settle_seconds": 1, "health_timeout": 30, "pull": "missing"}),
    )
    row = daemon.table.wait(op_id, timeout=120)
    if row["status"] != "completed":
        raise RuntimeError(f"recreate {op_id} ended {row['status']}: {row['error']}")
    return json.loads(row["result"])


def bench_recreate_downtime(*, runs: int = 5, workdir: Path | None = None) -> dict[str, Any]:
    """Measure the three downtimes `runs` times each and return their medians and samples (seconds)."""
    client = docker.from_env(timeout=120)
    api = client.api
    api.inspect_image(WEB_IMAGE)
    name = f"dwbench-recreate-{secrets.token_hex(3)}"
    port = free_port()
    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="dwbench-recreate-")) if workdir is None else workdir
    daemon = Daemon(workdir / "recreate-daemon", env={"DOCKWRIGHT_LOG_LEVEL": "INFO"})
    samples: dict[str, list[float]] = {"dockwright": [], "naive": [], "floor": []}
    reported: list[float] = []
    gate_after_service: list[float] = []

    try:
        api.start(api.create_container_from_config(_body(port), name=name)["Id"])
        daemon.start()
        with Prober(port) as prober:
            prober.wait_answering(after=time.monotonic())
            for _ in range(runs):
                for kind in ("dockwright", "naive", "floor"):
                    began = time.monotonic()
                    if kind == "dockwright":
                        result = _dockwright(daemon, name)
                        reported.append(float(result["downtime_seconds"]))
                        finished = time.monotonic()
                    elif kind == "naive":
                        _naive(api, name, port)
                    else:
                        _floor(api, name, port)
                    prober.wait_answering(after=time.monotonic())
                    time.sleep(0.05)
                    outage, back = prober.outage(since=began)
                    samples[kind].append(outage)
                    if kind == "dockwright":
                        # The gate ends after the service is back, so it cannot add to the outage.
                        gate_after_service.append(finished - back)
    finally:
        daemon.stop()
        for container in api.containers(all=True, filters={"name": name}):
            api.remove_container(container["Id"], force=True)
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        client.close()

    medians = {kind: statistics.median(values) for kind, values in samples.items()}
    return {
        "runs": runs,
        "median_seconds": medians,
        "samples_seconds": samples,
        "dockwright_reported_median": statistics.median(reported),
        "gate_after_service_min": min(gate_after_service),
        "ratio_to_floor": medians["dockwright"] / medians["floor"],
        "target_ratio": TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measurements of each kind (default 5)")
    args = parser.parse_args(argv)
    figures = bench_recreate_downtime(runs=args.runs)
    medians = figures["median_seconds"]
    for kind in ("dockwright", "naive", "floor"):
        shown = ", ".join(f"{value * 1000:.0f}" for value in figures["samples_seconds"][kind])
        print(f"{kind:>10}: median {medians[kind] * 1000:.0f} ms  (runs: {shown} ms)")
    print(f"dockwright's own downtime figure, median: {figures['dockwright_reported_median'] * 1000:.0f} ms")
    print(f"health gate ended at least {figures['gate_after_service_min']:.2f} s after the service answered again")
    ratio = figures["ratio_to_floor"]
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"dockwright / floor: {ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
