"""Reject wrongly typed priority and cancel_requested values on SQLite.

SQLite stores any value in any column, so a service could write `priority = 'low'` (which
sorts above every number) or `cancel_requested = 'false'` (neither true nor false to a
query), and the row would run first or never. PostgreSQL's column types already reject both.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from controller.clients.schema import CANCEL_REQUESTED_CHECK, PRIORITY_CHECK

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# Rows written before the constraints existed: an unfinished row with a priority that is not
# a number fails with an error naming the value (a finished one keeps its outcome), a real
# number is rounded toward zero, and a text cancellation flag becomes 1 when it reads as true.
_REPAIR_PRIORITY = """
UPDATE docker_operations
SET error = CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN error
                 ELSE 'priority: invalid value ' || quote(priority) || '; it must be an integer' END,
    status = CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN status ELSE 'failed' END,
    finished_at = coalesce(finished_at, strftime('%Y-%m-%d %H:%M:%f', 'now')),
    priority = 0
WHERE typeof(priority) NOT IN ('integer', 'real')
"""
_ROUND_PRIORITY = "UPDATE docker_operations SET priority = CAST(priority AS INTEGER) WHERE typeof(priority) = 'real'"
_REPAIR_CANCEL = """
UPDATE docker_operations
SET cancel_requested = CASE WHEN lower(trim(cancel_requested)) IN ('1', 'true', 'yes', 'on') THEN 1 ELSE 0 END
WHERE cancel_requested NOT IN (0, 1) OR typeof(cancel_requested) != 'integer'
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_REPAIR_PRIORITY)
    op.execute(_ROUND_PRIORITY)
    op.execute(_REPAIR_CANCEL)
    with op.batch_alter_table("docker_operations") as batch:
        batch.create_check_constraint(PRIORITY_CHECK[0], PRIORITY_CHECK[1])
        batch.create_check_constraint(CANCEL_REQUESTED_CHECK[0], CANCEL_REQUESTED_CHECK[1])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("docker_operations") as batch:
        batch.drop_constraint(PRIORITY_CHECK[0], type_="check")
        batch.drop_constraint(CANCEL_REQUESTED_CHECK[0], type_="check")
