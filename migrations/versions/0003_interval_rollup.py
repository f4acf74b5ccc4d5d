"""interval_rollup: the window's tally per channel, queue and 15-minute interval, for history reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
    "arrived",
    "started",
    "started_within",
    "left",
    "left_after_short",
    "finished",
    "served",
    "resolved_first_contact",
    "transferred",
    "handled",
)


def upgrade() -> None:
    op.create_table(
        "interval_rollup",
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("interval_start", sa.TIMESTAMP(timezone=True), nullable=False),
        *(sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in COUNTS),
        sa.Column("wait_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("handle_sum", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("channel", "queue", "interval_start", name=op.f("pk_interval_rollup")),
    )
    op.create_index(
        op.f("ix_interval_rollup_interval_start"), "interval_rollup", ["interval_start"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_interval_rollup_interval_start"), table_name="interval_rollup")
    op.drop_table("interval_rollup")
