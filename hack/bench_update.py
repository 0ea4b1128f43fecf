"""Benchmark of up-to-date `update_image` checks against `docker pull` of the same images.

    .venv/bin/python hack/bench_update.py [--count 200] [--pulls 20]

`bench_update_checks` writes COUNT small images to the open test registry (localhost:5001),
each under its own tag of a fresh `dwbench-update-...` repository, and pulls every tag with
the engine. Separate images stand for a host with many images: one image under all the tags
would carry every tag in its inspect output, which makes each inspect slower than usual.
Then it runs one `update_image` operation per tag in this process, through the reactor's
`execute` with the controller's services on a temporary SQLite file. A counting
`on_request` callback on the registry client records each request by kind.
For comparison, PULLS of the same up-to-date tags go through docker-py's low-level `pull`,
which is what `docker pull` sends to the engine, and through the `docker pull -q` command;
half of them run before the checks and half after.

Targets: only manifest requests (no blob and no token request), and a check that takes at
most 0.2 of the time of an up-to-date `docker pull`. The pulled tags and the registry
manifests are removed afterwards. Needs hack/engine.sh and hack/registries.sh.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from controller.clients import migrate as migrations  # noqa: E402
from controller.clients.database import Database  # noqa: E402
from controller.clients.docker import DockerClient  # noqa: E402
from controller.clients.registry import RegistryClient  # noqa: E402
from controller.clients.store import Store  # noqa: E402
from controller.config import Settings  # noqa: E402
from controller.logs import configure_logging  # noqa: E402
from controller.operations.context import Services  # noqa: E402
from controller.reactor.controller import _route_docker_call  # noqa: E402
from controller.reactor.executor import execute  # noqa: E402
from tests.support.registry_writer import RegistryWriter  # noqa: E402

REGISTRY = "localhost:5001"
REGISTRY_URL = "http://127.0.0.1:5001"
TARGET_RATIO = 0.2


def bench_update_checks(
    *, count: int = 200, pulls: int = 20, concurrency: int = 1, workdir: Path | None = None
) -> dict[str, Any]:
    """Run the benchmark and return its figures (times in milliseconds, requests by kind).

    With `concurrency` above 1, that many checks run at once, as the daemon runs them, and
    the time per check is the wall time divided by the number of checks.

    Raises `RuntimeError` when a check does not complete as `up_to_date`.
    """
    repository = f"dwbench-update-{secrets.token_hex(3)}"
    tags = [f"t{number}" for number in range(count)]
    client = docker.from_env(timeout=120)
    api = client.api
    writer = RegistryWriter(REGISTRY_URL)
    try:
        for tag in tags:
            writer.push_image(repository, tag=tag, marker=f"bench-{tag}")
        for tag in tags:
            api.pull(f"{REGISTRY}/{repository}", tag=tag)

        # Half of the pulls run before the checks and half after, so that a machine that
        # slows down or speeds up during the run moves both sides of the ratio alike.
        before, after = tags[: pulls // 2], tags[pulls // 2 : pulls]
        pull_ms = _time_docker_pulls(api, repository, before)
        cli_pull_ms = _time_cli_pulls(repository, before)
        with tempfile.TemporaryDirectory(dir=workdir) as scratch:
            check_ms, wall_ms, requests, statuses = anyio.run(
                _time_checks, Path(scratch), repository, tags, concurrency
            )
        pull_ms += _time_docker_pulls(api, repository, after)
        cli_pull_ms += _time_cli_pulls(repository, after)
    finally:
        _remove_tags(api, repository, tags)
        writer.delete_pushed()
        writer.close()
        client.close()

    if statuses != Counter({"up_to_date": count}):
        raise RuntimeError(f"expected {count} up_to_date checks, got {dict(statuses)}")

    check_mean = statistics.fmean(check_ms) if concurrency == 1 else wall_ms / count
    pull_mean = statistics.fmean(pull_ms)
    return {
        "checks": count,
        "concurrency": concurrency,
        "check_mean_ms": check_mean,
        "check_median_ms": statistics.median(check_ms),
        "pulls": len(pull_ms),
        "pull_mean_ms": pull_mean,
        "pull_median_ms": statistics.median(pull_ms),
        "ratio": check_mean / pull_mean,
        "cli_pull_mean_ms": statistics.fmean(cli_pull_ms),
        "cli_ratio": check_mean / statistics.fmean(cli_pull_ms),
        "requests": dict(requests),
        "manifest_requests_per_check": requests["manifest"] / count,
    }


def _time_docker_pulls(api: docker.APIClient, repository: str, tags: list[str]) -> list[float]:
    """Pull tags that are already up to date; return each pull's duration in milliseconds."""
    durations = []
    for tag in tags:
        started = time.perf_counter()
        for event in api.pull(f"{REGISTRY}/{repository}", tag=tag, stream=True, decode=True):
            if "error" in event:
                raise RuntimeError(f"docker pull of {repository}:{tag} failed: {event['error']}")
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def _time_cli_pulls(repository: str, tags: list[str]) -> list[float]:
    """Run `docker pull -q` of tags that are already up to date; return each duration in milliseconds.

    This is the command a user runs to find out whether an image is current: the CLI's start
    and its own engine requests included.
    """
    durations = []
    for tag in tags:
        started = time.perf_counter()
        subprocess.run(["docker", "pull", "-q", f"{REGISTRY}/{repository}:{tag}"], check=True, capture_output=True)
        durations.append((time.perf_counter() - started) * 1000)
    return durations


async def _time_checks(
    scratch: Path, repository: str, tags: list[str], concurrency: int
) -> tuple[list[float], float, Counter[str], Counter[str]]:
    """Run one update_image per tag through `execute`.

    Returns each check's duration and the wall time in milliseconds, the registry requests by
    kind and the result statuses.
    """
    path = scratch / "bench.db"
    database = Database(f"sqlite:///{path}")
    migrations.upgrade(database.engine)
    settings = Settings(database_url=f"sqlite:///{path}", log_format="json", instance_id="bench-update")
    requests: Counter[str] = Counter()
    registry = RegistryClient(
        credentials_for=lambda registry_host: None,
        on_request=lambda registry_host, kind, status: requests.update([kind]),
    )
    services = Services(
        store=Store(database),
        docker=DockerClient(observer=_route_docker_call),
        settings=settings,
        registry=registry,
    )

    durations: list[float] = []
    statuses: Counter[str] = Counter()
    try:
        for tag in tags:
            database.insert(type="update_image", image=f"{REGISTRY}/{repository}:{tag}")
        rows = await services.store.claim(host=settings.host, instance_id=settings.instance_id, limit=len(tags))

        async def check(row: Any) -> None:
            started = time.perf_counter()
            outcome = await execute(row, services)
            durations.append((time.perf_counter() - started) * 1000)
            finished = await services.store.get(row.id)
            statuses.update([finished.result_data().get("status", outcome) if finished else outcome])

        async def worker(share: list[Any]) -> None:
            for row in share:
                await check(row)

        wall_started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for number in range(concurrency):
                group.start_soon(worker, rows[number::concurrency])
        wall_ms = (time.perf_counter() - wall_started) * 1000
    finally:
        await registry.aclose()
        database.close()
    return durations, wall_ms, requests, statuses


def _remove_tags(api: docker.APIClient, repository: str, tags: list[str]) -> None:
    for tag in tags:
        try:
            api.remove_image(f"{REGISTRY}/{repository}:{tag}", noprune=False)
        except docker.errors.NotFound:
            pass


def print_figures(figures: dict[str, Any]) -> None:
    requests = figures["requests"]
    ratio_verdict = "PASS" if figures["ratio"] <= TARGET_RATIO else "FAIL"
    blob_verdict = "PASS" if set(requests) <= {"manifest"} else "FAIL"
    print(f"up-to-date checks: {figures['checks']}, {figures['concurrency']} at a time")
    print(f"  time per check: mean {figures['check_mean_ms']:.1f} ms, median {figures['check_median_ms']:.1f} ms")
    print(f"  docker pull of the same up-to-date tags ({figures['pulls']}): mean {figures['pull_mean_ms']:.1f} ms, median {figures['pull_median_ms']:.1f} ms")
    print(f"  ratio check / pull (means): {figures['ratio']:.3f} (target <= {TARGET_RATIO}) {ratio_verdict}")
    print(f"  registry requests by kind: {requests} ({figures['manifest_requests_per_check']:.2f} manifest requests per check; target: manifest only) {blob_verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="number of up-to-date references to check")
    parser.add_argument("--pulls", type=int, default=20, help="number of up-to-date docker pulls to time")
    parser.add_argument("--concurrency", type=int, default=1, help="checks run at once (the daemon's default is 4)")
    args = parser.parse_args(argv)

    # The operations log through structlog; keep their JSON lines off the figures.
    saved_stderr = sys.stderr
    with open("/dev/null", "w") as sink:
        sys.stderr = sink
        configure_logging(log_format="json", level="WARNING")
        sys.stderr = saved_stderr
        figures = bench_update_checks(count=args.count, pulls=args.pulls, concurrency=args.concurrency)
    print_figures(figures)
    return 0 if figures["ratio"] <= TARGET_RATIO and set(figures["requests"]) <= {"manifest"} else 1


if __name__ == "__main__":
    raise SystemExit(main())
