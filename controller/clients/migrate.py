"""Run the alembic migrations that create and upgrade the tables.

alembic is imported only when a migration has to run: the daemon checks the stored revision
with one plain query first, which keeps about 10 MB of modules out of an up-to-date daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# The newest revision in migrations/versions; a test checks it against alembic's own view.
HEAD_REVISION = "0003"


def _alembic_config(connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Upgrade the schema of `engine`'s database to `revision`."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_if_needed(engine: sa.Engine) -> bool:
    """Upgrade to the head revision unless the database is there already; True if it ran."""
    if current_revision(engine) == HEAD_REVISION:
        return False
    upgrade(engine)
    return True


def head_revision() -> str:
    """Return the newest revision that alembic finds in the migrations folder."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head
