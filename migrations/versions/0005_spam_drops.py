# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard drop counters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "spam_drops",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(1024), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spam_drops"),
        sa.UniqueConstraint("reason", "domain", name="uq_spam_drops_reason"),
    )


def downgrade() -> None:
    op.drop_table("spam_drops")
