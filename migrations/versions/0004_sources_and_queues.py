"""ingest sources: which named token stored each event, named ingest tokens, and the queue registry

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The name of the ingest token that stored the event (NULL for rows stored before tokens had names).
    op.add_column("events", sa.Column("ingested_by", sa.String(length=64), nullable=True))
    op.create_table(
        "ingest_tokens",
        sa.Column("name", sa.String(length=64), nullable=False),
        # SHA-256 of the token: the token itself is shown once, at creation, and never stored.
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("revoked_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ingest_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_ingest_tokens_digest")),
    )
    op.create_table(
        "queues",
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("admitted_by", sa.String(length=64), nullable=True),
        sa.Column("admitted_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("retired_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("channel", "queue", name=op.f("pk_queues")),
    )
    # The queues already stored count against the cap as before: registered, by nobody, when first received.
    op.execute(
        "INSERT INTO queues (channel, queue, admitted_at) "
        "SELECT channel, queue, min(received_at) FROM events GROUP BY channel, queue"
    )


def downgrade() -> None:
    op.drop_table("queues")
    op.drop_table("ingest_tokens")
    op.drop_column("events", "ingested_by")
