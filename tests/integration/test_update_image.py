"""The update_image operation in-process, through the reactor's `execute` on a temporary SQLite
file with the real engine and the open local registry.

These tests cover what the daemon tests cannot set up: a row resumed from its journal, and an
operation without the controller's shared registry client. They also check the rules that
pick the containers of the recreate children.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.clients import migrate
from controller.clients.database import Database
from controller.clients.docker import DockerClient
from controller.clients.store import Store
from controller.config import Settings
from controller.operations.context import Services
from controller.operations.update_image import _is_id_of, _names_reference
from controller.reactor.executor import execute
from controller.specs.reference import parse_reference
from tests.support.engine import Registry
from tests.support.registry_writer import RegistryWriter

pytestmark = pytest.mark.anyio

OLD_ID = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'ops.db'}")
    migrate.upgrade(database.engine)
    yield database
    database.close()


@pytest.fixture
def open_writer(registry: Registry) -> Iterator[RegistryWriter]:
    with RegistryWriter(registry.url(registry.open_address)) as writer:
        yield writer
        writer.delete_pushed()


async def run_row(database: Database, tmp_path: Path, **columns: Any) -> dict[str, Any]:
    """Insert, claim and execute one row with no shared registry client; return the final row."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ops.db'}", instance_id="test-update")
    services = Services(store=Store(database), docker=DockerClient(), settings=settings)
    op_id = database.insert(**columns)
    (row,) = await services.store.claim(host=settings.host, instance_id=settings.instance_id, limit=1)
    assert row.id == op_id

    await execute(row, services)
    finished = database.get(op_id)
    assert finished is not None
    return {"status": finished.status, "error": finished.error, "message": finished.message, "result": finished.result_data()}


async def test_check_without_shared_client(database, tmp_path, registry, docker_client, unique_prefix, open_writer):
    """An operation without the controller's registry client opens and closes its own."""
    repository = f"{unique_prefix}/app"
    pushed = open_writer.push_image(repository, tag="1")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")

    finished = await run_row(database, tmp_path, type="update_image", image=f"{registry.open_address}/{repository}:1")
    assert finished["status"] == "completed", finished
    assert finished["result"]["status"] == "up_to_date"
    assert finished["result"]["remote_digest"] == pushed.digest


async def test_resume_after_pull_is_updated(database, tmp_path, registry, docker_client, unique_prefix, open_writer):
    """A row whose journal shows a started pull reports `updated` with the journal's old id."""
    repository = f"{unique_prefix}/app"
    pushed = open_writer.push_image(repository, tag="1")
    docker_client.api.pull(f"{registry.open_address}/{repository}", tag="1")
    journal = {"journal": {"old_image_id": OLD_ID, "pull_started": True, "remote_digest": pushed.digest}}

    finished = await run_row(
        database,
        tmp_path,
        type="update_image",
        image=f"{registry.open_address}/{repository}:1",
        result=json.dumps(journal),
    )
    assert finished["status"] == "completed", finished
    assert finished["result"]["status"] == "updated"
    assert finished["result"]["old_image_id"] == OLD_ID
    assert finished["result"]["new_image_id"] == pushed.config_digest


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("localhost:5001/team/app", True),
        ("localhost:5001/team/app:latest", True),
        ("localhost:5001/team/app:2", False),
        ("localhost:5001/team/other:latest", False),
        ("localhost:5002/team/app:latest", False),
        ("localhost:5001/team/app@sha256:" + "a" * 64, False),
        ("not a reference", False),
    ],
)
def test_reference_match_rules(configured: str, expected: bool) -> None:
    reference = parse_reference("localhost:5001/team/app:latest")
    assert _names_reference(configured, reference) is expected


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (OLD_ID, True),
        (OLD_ID.removeprefix("sha256:"), True),
        ("0123456789ab", True),
        ("sha256:0123456789ab", True),
        ("0123456789a", False),  # shorter than 12 digits
        ("123456789abc", False),  # not a prefix
        ("localhost:5001/team/app", False),
    ],
)
def test_image_id_match_rules(configured: str, expected: bool) -> None:
    assert _is_id_of(configured, OLD_ID) is expected
