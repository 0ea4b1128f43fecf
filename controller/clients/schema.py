"""The two public tables, declared once for the ORM, the migrations and raw SQL users.

Other services write rows with plain SQL, so every default is a server-side default and
timestamps are UTC. On SQLite timestamps are stored as `YYYY-MM-DD HH:MM:SS.fff` text, which
sorts in time order; on PostgreSQL as `timestamp` columns in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Field, SQLModel


class utcnow(FunctionElement):
    """The current UTC time, with milliseconds, as each dialect spells it."""

    type = sa.DateTime()
    inherit_cache = True


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element, compiler, **kw):  # noqa: ANN001
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


@compiles(utcnow, "postgresql")
def _utcnow_postgresql(element, compiler, **kw):  # noqa: ANN001
    return "(now() AT TIME ZONE 'utc')"


@compiles(utcnow)
def _utcnow_default(element, compiler, **kw):  # noqa: ANN001
    return "CURRENT_TIMESTAMP"


STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")
OPERATION_TYPES = ("start", "recreate", "update_image")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# Constraints that only SQLite needs, because its columns accept a value of any type: names
# and expressions, shared with the migration that adds them.
PRIORITY_CHECK = ("ck_docker_operations_priority_integer", "typeof(priority) = 'integer'")
CANCEL_REQUESTED_CHECK = ("ck_docker_operations_cancel_requested_boolean", "cancel_requested IN (0, 1)")

# Rows whose cancellation was requested, the few that the claim loop sweeps on every turn.
# A partial index keeps that lookup from reading every pending row.
CANCEL_INDEX = "ix_docker_operations_cancel_requested"
# SQLite uses a partial index only for a query that repeats its condition, so the index
# condition is the claim loop's `cancel_requested = 1`. PostgreSQL compares booleans itself.
CANCEL_INDEX_WHERE = {"sqlite_where": sa.text("cancel_requested = 1"), "postgresql_where": sa.text("cancel_requested")}


# NOTE: the ids are not AUTOINCREMENT, so SQLite gives the highest id again after that row
# is deleted, and log rows left behind by a delete without foreign keys show under it.
class Operation(SQLModel, table=True):
    """A requested Docker operation and its reported state (`docker_operations`)."""

    __tablename__ = "docker_operations"
    __table_args__ = (
        sa.Index("ix_docker_operations_claim", "status", "host", "priority", "created_at"),
        sa.Index("ix_docker_operations_container", "container", "status"),
        sa.Index("ix_docker_operations_parent_id", "parent_id"),
        sa.Index(
            CANCEL_INDEX, "host", "status", **CANCEL_INDEX_WHERE),
        sa.CheckConstraint(PRIORITY_CHECK[1], name=PRIORITY_CHECK[0]).ddl_if(dialect="sqlite"),
        sa.CheckConstraint(CANCEL_REQUESTED_CHECK[1], name=CANCEL_REQUESTED_CHECK[0]).ddl_if(dialect="sqlite"),
    )

    id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True))
    type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    container: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    image: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    spec: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    options: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    host: str = Field(
        default="local", sa_column=sa.Column(sa.Text, nullable=False, server_default="local")
    )
    priority: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    status: str = Field(
        default="pending", sa_column=sa.Column(sa.Text, nullable=False, server_default="pending")
    )
    progress: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    message: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    error: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    result: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    attempts: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    parent_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    cancel_requested: bool = Field(
        default=False,
        sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()),
    )
    claimed_by: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    heartbeat_at: Optional[datetime] = Field(
        default=None, sa_column=sa.Column(sa.DateTime, nullable=True)
    )
    created_at: Optional[datetime] = Field(
        default=None, sa_column=sa.Column(sa.DateTime, nullable=False, server_default=utcnow())
    )
    updated_at: Optional[datetime] = Field(
        default=None, sa_column=sa.Column(sa.DateTime, nullable=False, server_default=utcnow())
    )
    started_at: Optional[datetime] = Field(
        default=None, sa_column=sa.Column(sa.DateTime, nullable=True)
    )
    finished_at: Optional[datetime] = Field(
        default=None, sa_column=sa.Column(sa.DateTime, nullable=True)
    )


class OperationLog(SQLModel, table=True):
    """One step, Docker call or event of an operation (`docker_operation_logs`)."""

    __tablename__ = "docker_operation_logs"

    id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True))
    operation_id: int = Field(
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("docker_operations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    created_at: Optional[datetime] = Field(
        default=None, sa_column=sa.Column(sa.DateTime, nullable=False, server_default=utcnow())
    )
    level: str = Field(
        default="INFO", sa_column=sa.Column(sa.Text, nullable=False, server_default="INFO")
    )
    message: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    details: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


operations = Operation.__table__
operation_logs = OperationLog.__table__
metadata = SQLModel.metadata
