# SPDX-License-Identifier: AGPL-3.0-or-later
"""Delivery retries: outbox rows kept after sending to remote servers; subscription failure counts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as b:
        b.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("subscriptions") as b:
        b.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as b:
        b.drop_column("failures")
    with op.batch_alter_table("outbox") as b:
        b.drop_column("sent_at")
