# SPDX-License-Identifier: AGPL-3.0-or-later
"""Delivery counts: what became of each post's notifications, per recipient server.

The outbox forgets a notification once it is handed over (local users) or once
its bounce window has passed (other servers). `delivery_counts` keeps the
outcome: per (sender, node, item id, recipient server) how many were delivered
and how many failed for good, so an author can ask how far a post got (`status
ID` by chat) and an admin what each remote server received (`xmppblog stats`).
`server` is '' for this server's own users (handed over in bulk); `item_id` is
'' for notifications that are not a post (retractions, presence, subscriptions).
Rows are written by the outbox sender, never on the publish path, and
forgotten after a week (core/delivery.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-15
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery_counts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sender", sa.String(2047), nullable=False),
        sa.Column("node", sa.String(1024), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("server", sa.String(1024), nullable=False),
        sa.Column("delivered", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_counts"),
        sa.UniqueConstraint("sender", "node", "item_id", "server", name="uq_delivery_counts_sender"),
    )
    op.create_index("ix_delivery_counts_created_at", "delivery_counts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_counts_created_at", table_name="delivery_counts")
    op.drop_table("delivery_counts")
