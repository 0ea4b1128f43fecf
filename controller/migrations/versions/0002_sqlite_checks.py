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


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("docker_operations") as batch:
        batch.create_check_constraint(PRIORITY_CHECK[0], PRIORITY_CHECK[1])
        batch.create_check_constraint(CANCEL_REQUESTED_CHECK[0], CANCEL_REQUESTED_CHECK[1])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("docker_operations") as batch:
        batch.drop_constraint(PRIORITY_CHECK[0], type_="check")
        batch.drop_constraint(CANCEL_REQUESTED_CHECK[0], type_="check")
