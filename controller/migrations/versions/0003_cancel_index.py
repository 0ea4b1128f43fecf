"""Index the rows whose cancellation was requested.

The claim loop looks for pending rows with `cancel_requested` set before every claim. Without
this partial index that lookup reads every pending row of the host, which with thousands of
pending rows cost more than the claim itself.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from controller.clients.schema import CANCEL_INDEX, CANCEL_INDEX_WHERE

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        CANCEL_INDEX,
        "docker_operations",
        ["host", "status"],
        **CANCEL_INDEX_WHERE,
    )


def downgrade() -> None:
    op.drop_index(CANCEL_INDEX, table_name="docker_operations")
