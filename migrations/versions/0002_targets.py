"""targets: per-queue service-level targets set through the API

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("threshold_seconds", sa.Float(), nullable=False),
        sa.Column("goal_pct", sa.Float(), nullable=False),
        sa.Column("formula", sa.String(length=24), nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("channel", "queue", name=op.f("pk_targets")),
    )


def downgrade() -> None:
    op.drop_table("targets")
