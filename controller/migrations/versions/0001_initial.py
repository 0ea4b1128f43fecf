"""Create docker_operations and docker_operation_logs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.clients.schema import utcnow

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "docker_operations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("container", sa.Text, nullable=True),
        sa.Column("image", sa.Text, nullable=True),
        sa.Column("spec", sa.Text, nullable=True),
        sa.Column("options", sa.Text, nullable=True),
        sa.Column("host", sa.Text, nullable=False, server_default="local"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("parent_id", sa.Integer, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("claimed_by", sa.Text, nullable=True),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=utcnow()),
        sa.Column("updated_at", sa.DateTime, nullable=False, server_default=utcnow()),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_index(
        "ix_docker_operations_claim",
        "docker_operations",
        ["status", "host", "priority", "created_at"],
    )
    op.create_index("ix_docker_operations_container", "docker_operations", ["container", "status"])
    op.create_index("ix_docker_operations_parent_id", "docker_operations", ["parent_id"])

    op.create_table(
        "docker_operation_logs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "operation_id",
            sa.Integer,
            sa.ForeignKey("docker_operations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=utcnow()),
        sa.Column("level", sa.Text, nullable=False, server_default="INFO"),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_docker_operation_logs_operation_id", "docker_operation_logs", ["operation_id"]
    )


def downgrade() -> None:
    op.drop_table("docker_operation_logs")
    op.drop_table("docker_operations")
