"""replicas: the events table read in commit order (txid per row), and the window checkpoint

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every instance tails the events table by (txid, id): a bigserial id alone is handed out before
    # commit, so a row committed late under a smaller id would be skipped by a high-water mark. Rows stored
    # before this migration get the migrating transaction's id (one value, below every later one).
    op.execute("ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.create_index("ix_events_txid_id", "events", ["txid", "id"], unique=False)
    # The window's state as of a log position, written by the rollup writer (app/db/checkpoint.py).
    op.create_table(
        "window_checkpoints",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("position_txid", sa.BigInteger(), nullable=False),
        sa.Column("position_id", sa.BigInteger(), nullable=False),
        sa.Column("applied_txids", sa.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("written_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_window_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("window_checkpoints")
    op.drop_index("ix_events_txid_id", table_name="events")
    op.execute("ALTER TABLE events DROP COLUMN txid")
