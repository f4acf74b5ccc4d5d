"""the lobby's expected-wait estimates, each against the wait its ticket then had

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per ticket given an estimate and then called (app/core/waits.py): the score kept past the
    # live window's two days, for the accuracy per period. Rebuilt rows are the same rows (the estimate is
    # a function of the stored events), so rewriting one is idempotent.
    op.create_table(
        "wait_estimates",
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("issued_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("estimate_seconds", sa.Float(), nullable=False),
        sa.Column("estimate_range", sa.String(8), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("called_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("actual_seconds", sa.Float(), nullable=False),
        sa.Column("inside", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "contact_id", "issued_at", name=op.f("pk_wait_estimates")),
    )
    op.create_index(op.f("ix_wait_estimates_issued_at"), "wait_estimates", ["issued_at"], unique=False)
    # The ledger reads the visit channel's new rows by id every few seconds (app/db/waits.py): with phone
    # traffic in the same table, a range scan of the primary key would touch every phone row as well.
    op.create_index(
        "ix_events_visit_id", "events", ["id"], unique=False, postgresql_where=sa.text("channel = 'visit'")
    )


def downgrade() -> None:
    op.drop_index("ix_events_visit_id", table_name="events")
    op.drop_index(op.f("ix_wait_estimates_issued_at"), table_name="wait_estimates")
    op.drop_table("wait_estimates")
