# SPDX-License-Identifier: AGPL-3.0-or-later
"""Bulk outbox: a planned notification carries its local recipients in one row.

Local recipients (on this server's own domains) need no per-recipient
tracking: they are written as one newline-separated column and handed to the
stream in one write. Recipients on other servers keep one `outbox` row each,
so bounces can be matched and retried.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_events", sa.Column("recipients", sa.Text(), nullable=True))
    op.add_column("outbox_events", sa.Column("next_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_outbox_events_next_at", "outbox_events", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_events_next_at", table_name="outbox_events")
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("next_at")
        batch.drop_column("recipients")
