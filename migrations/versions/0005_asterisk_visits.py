"""an index of Asterisk queue visits: the call.offered events of a uniqueid in a queue, found by prefix

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A caller who re-enters a queue gets a contact id `uniqueid@queue#N` per visit after the first; the
    # Asterisk route finds a channel's visits by the prefix `uniqueid@queue`, bytewise (text_pattern_ops),
    # in an index that holds only Asterisk arrivals, so the other rows pay nothing for it.
    op.create_index(
        "ix_events_asterisk_visits",
        "events",
        ["contact_id"],
        unique=False,
        postgresql_ops={"contact_id": "text_pattern_ops"},
        postgresql_where=sa.text("type = 'call.offered' AND source = 'asterisk'"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_asterisk_visits", table_name="events")
