"""The migrations produce exactly the schema that `controller.clients.schema` declares.

Other services depend on the tables as the migrations create them, while the controller's
queries are written against the declared metadata. A difference between the two would only
show up in production.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from controller import cli
from controller.clients import migrate
from controller.clients.database import Database
from controller.clients.schema import metadata

UTC_NOW_SQLITE = "strftime('%Y-%m-%d %H:%M:%f', 'now')"

# Columns with a server default, and the default as SQLite reports it.
EXPECTED_DEFAULTS = {
    "docker_operations": {
        "host": "'local'",
        "priority": "'0'",
        "status": "'pending'",
        "progress": "'0'",
        "attempts": "'0'",
        "cancel_requested": "0",
        "created_at": UTC_NOW_SQLITE,
        "updated_at": UTC_NOW_SQLITE,
    },
    "docker_operation_logs": {
        "created_at": UTC_NOW_SQLITE,
        "level": "'INFO'",
    },
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dockwright.db'}"


@pytest.fixture
def upgraded(database_url: str, capsys: pytest.CaptureFixture[str]) -> Database:
    exit_code = cli.main(["db", "upgrade", "--database-url", database_url])
    assert exit_code == 0, capsys.readouterr().err
    database = Database(database_url)
    yield database
    database.close()


def test_upgrade_creates_tables(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = cli.main(["db", "upgrade", "--database-url", database_url])
    output = capsys.readouterr().out
    database = Database(database_url)
    tables = set(sa.inspect(database.engine).get_table_names())
    revision = migrate.current_revision(database.engine)
    database.close()

    assert exit_code == 0
    assert {"docker_operations", "docker_operation_logs"} <= tables
    assert revision == migrate.head_revision()
    assert f"database schema at revision {revision} (was empty)" in output


def test_migrated_schema_matches_models(upgraded: Database) -> None:
    with upgraded.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_server_defaults_match(upgraded: Database) -> None:
    inspector = sa.inspect(upgraded.engine)

    for table, expected in EXPECTED_DEFAULTS.items():
        columns = {column["name"]: column for column in inspector.get_columns(table)}
        actual = {name: column["default"] for name, column in columns.items() if column["default"] is not None}
        assert actual == expected, table


def test_model_defaults_match_migration(upgraded: Database) -> None:
    """The declared server defaults compile to what the migration created."""
    inspector = sa.inspect(upgraded.engine)
    dialect = upgraded.engine.dialect

    for table in metadata.sorted_tables:
        migrated = {column["name"]: column["default"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.server_default is None:
                assert migrated[column.name] is None, (table.name, column.name)
                continue
            argument = column.server_default.arg
            compiled = argument if isinstance(argument, str) else str(argument.compile(dialect=dialect))
            assert _bare(migrated[column.name]) == _bare(compiled), (table.name, column.name)


def test_nullability_and_indexes(upgraded: Database) -> None:
    inspector = sa.inspect(upgraded.engine)
    columns = {column["name"]: column for column in inspector.get_columns("docker_operations")}
    indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("docker_operations")}
    log_indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("docker_operation_logs")}

    assert columns["type"]["nullable"] is False
    assert columns["status"]["nullable"] is False
    assert columns["host"]["nullable"] is False
    assert columns["container"]["nullable"] is True
    assert columns["heartbeat_at"]["nullable"] is True
    assert indexes["ix_docker_operations_claim"] == ["status", "host", "priority", "created_at"]
    assert indexes["ix_docker_operations_container"] == ["container", "status"]
    assert log_indexes["ix_docker_operation_logs_operation_id"] == ["operation_id"]


def test_log_foreign_key_cascades(upgraded: Database) -> None:
    foreign_keys = sa.inspect(upgraded.engine).get_foreign_keys("docker_operation_logs")

    assert len(foreign_keys) == 1
    assert foreign_keys[0]["referred_table"] == "docker_operations"
    assert foreign_keys[0]["constrained_columns"] == ["operation_id"]
    assert foreign_keys[0]["options"].get("ondelete") == "CASCADE"


def test_upgrade_twice_is_noop(upgraded: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    op_id = upgraded.insert(type="start", image="localhost:5001/demo/web:1")
    schema_before = _schema_sql(upgraded)

    exit_code = cli.main(["db", "upgrade", "--database-url", database_url])
    output = capsys.readouterr().out
    schema_after = _schema_sql(upgraded)

    assert exit_code == 0
    assert schema_after == schema_before
    assert upgraded.get(op_id) is not None
    revision = migrate.head_revision()
    assert f"database schema at revision {revision} (was {revision})" in output


def test_logs_deleted_with_operation(upgraded: Database, database_url: str) -> None:
    path = database_url.removeprefix("sqlite:///")
    op_id = upgraded.insert(type="start", image="localhost:5001/demo/web:1")
    other_id = upgraded.insert(type="start", image="localhost:5001/demo/web:1")
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        with connection:
            for owner in (op_id, other_id):
                connection.execute("INSERT INTO docker_operation_logs (operation_id, message) VALUES (?, 'step')", (owner,))
            connection.execute("DELETE FROM docker_operations WHERE id = ?", (op_id,))
        remaining = connection.execute("SELECT operation_id FROM docker_operation_logs").fetchall()
    finally:
        connection.close()

    assert remaining == [(other_id,)]


def _bare(default: str) -> str:
    """Drop the quotes of a literal default and the parentheses of an expression default."""
    if default.startswith("(") and default.endswith(")"):
        default = default[1:-1]
    return default.strip("'")


def _schema_sql(database: Database) -> list[tuple[str, str]]:
    with database.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT name, sql FROM sqlite_master ORDER BY name")
        return [tuple(row) for row in rows]


def test_head_constant_matches_alembic() -> None:
    """The daemon's quick up-to-date check uses a constant; it must name alembic's head."""
    assert migrate.HEAD_REVISION == migrate.head_revision()


def test_sqlite_checks_repair_old_rows(tmp_path: Path) -> None:
    """Upgrading a database whose rows break the new checks repairs them instead of failing."""
    path = tmp_path / "old.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database.engine, "0001")
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        INSERT INTO docker_operations (type, priority) VALUES ('start', 'high');
        INSERT INTO docker_operations (type, priority) VALUES ('start', 1.5);
        INSERT INTO docker_operations (type, cancel_requested) VALUES ('start', 'false');
        INSERT INTO docker_operations (type, cancel_requested) VALUES ('start', 'TRUE');
        INSERT INTO docker_operations (type, priority, status) VALUES ('start', 'x', 'completed');
        """
    )
    connection.commit()
    connection.close()

    migrate.upgrade(database.engine)
    rows = {row[0]: row[1:] for row in sqlite3.connect(path).execute(
        "SELECT id, priority, cancel_requested, status, error FROM docker_operations"
    )}
    database.close()

    assert rows[1] == (0, 0, "failed", "priority: invalid value 'high'; it must be an integer")
    assert rows[2] == (1, 0, "pending", None)
    assert rows[3] == (0, 0, "pending", None)
    assert rows[4] == (0, 1, "pending", None)
    assert rows[5] == (0, 0, "completed", None)
