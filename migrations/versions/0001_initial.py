# SPDX-License-Identifier: AGPL-3.0-or-later
"""Initial schema: nodes, items, subscriptions, affiliations, contacts, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(1024), nullable=False),
        sa.Column("node", sa.String(1024), nullable=False),
        sa.Column("owner", sa.String(1024), nullable=False),
        sa.Column("access_model", sa.String(16), nullable=False),
        sa.Column("max_items", sa.Integer(), nullable=False),
        sa.Column("notify_retract", sa.Boolean(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("service", "node", name="uq_nodes_service_node"),
    )
    op.create_table(
        "items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("node_id", BigId, sa.ForeignKey("nodes.id", ondelete="CASCADE",
                                                  name="fk_items_node_id_nodes"), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("publisher", sa.String(1024), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("published", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.UniqueConstraint("node_id", "item_id", name="uq_items_node_id_item_id"),
    )
    op.create_index("ix_items_node_id_id", "items", ["node_id", "id"])
    op.create_table(
        "subscriptions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("node_id", BigId, sa.ForeignKey("nodes.id", ondelete="CASCADE",
                                                  name="fk_subscriptions_node_id_nodes"), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("bare", sa.String(2047), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.UniqueConstraint("node_id", "jid", name="uq_subscriptions_node_id_jid"),
    )
    op.create_index("ix_subscriptions_bare", "subscriptions", ["bare"])
    op.create_table(
        "affiliations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("node_id", BigId, sa.ForeignKey("nodes.id", ondelete="CASCADE",
                                                  name="fk_affiliations_node_id_nodes"), nullable=False),
        sa.Column("jid", sa.String(2047), nullable=False),
        sa.Column("affiliation", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_affiliations"),
        sa.UniqueConstraint("node_id", "jid", name="uq_affiliations_node_id_jid"),
    )
    op.create_index("ix_affiliations_jid", "affiliations", ["jid"])
    op.create_table(
        "contacts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("blog", sa.String(2047), nullable=False),
        sa.Column("contact", sa.String(2047), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.UniqueConstraint("blog", "contact", name="uq_contacts_blog_contact"),
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(2047), nullable=False),
        sa.Column("node", sa.String(1024), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("publisher", sa.String(2047), nullable=True),
        sa.Column("subject", sa.String(3071), nullable=True),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_events"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", BigId, sa.ForeignKey("outbox_events.id", ondelete="CASCADE",
                                                   name="fk_outbox_event_id_outbox_events"), nullable=False),
        sa.Column("recipient", sa.String(3071), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_next_at", "outbox", ["next_at"])


def downgrade() -> None:
    for table in ("outbox", "outbox_events", "contacts", "affiliations", "subscriptions", "items", "nodes"):
        op.drop_table(table)
