"""agents and desks: staff seconds in interval_rollup, and an index of staff events by time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Agent or desk seconds per queue and quarter-hour (app/core/staff.py; Tally's staff fields).
STAFF_COLUMNS = ("staffed_seconds", "available_seconds", "handling_seconds", "paused_seconds")
# Written out rather than imported: a migration keeps the schema it made, whatever the code becomes.
STAFF_TYPES = (
    "agent.logged_in",
    "agent.logged_out",
    "agent.paused",
    "agent.ready",
    "agent.resumed",
    "agent.ringing",
    "desk.closed",
    "desk.opened",
)


def upgrade() -> None:
    for name in STAFF_COLUMNS:
        op.add_column("interval_rollup", sa.Column(name, sa.Float(), nullable=False, server_default="0"))
    # Replays and day rebuilds read staff events a week further back than contact events (app/db/staff.py).
    predicate = "type IN (" + ", ".join(f"'{name}'" for name in STAFF_TYPES) + ")"
    op.create_index(
        "ix_events_staff_occurred_at",
        "events",
        ["occurred_at"],
        unique=False,
        postgresql_where=sa.text(predicate),
    )


def downgrade() -> None:
    op.drop_index("ix_events_staff_occurred_at", table_name="events")
    for name in reversed(STAFF_COLUMNS):
        op.drop_column("interval_rollup", name)
