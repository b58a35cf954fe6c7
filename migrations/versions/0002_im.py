# SPDX-License-Identifier: AGPL-3.0-or-later
"""IM: delivery mode of subscriptions, roster columns, IM users, tracks, blocks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as b:
        b.add_column(sa.Column("delivery", sa.String(8), nullable=False, server_default="event"))
    with op.batch_alter_table("contacts") as b:
        b.add_column(sa.Column("sub_to", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("pending_in", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("pending_out", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_contacts_contact", "contacts", ["contact"])
    op.create_index("ix_items_item_id", "items", ["item_id"])
    op.create_table(
        "im_users",
        sa.Column("jid", sa.String(2047), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("jid", name="pk_im_users"),
    )
    op.create_table(
        "tracks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("jid", sa.String(2047), nullable=False),
        sa.Column("word", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tracks"),
        sa.UniqueConstraint("jid", "word", name="uq_tracks_jid_word"),
    )
    op.create_index("ix_tracks_word", "tracks", ["word"])
    op.create_table(
        "blocks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("jid", sa.String(2047), nullable=False),
        sa.Column("blocked", sa.String(2047), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blocks"),
        sa.UniqueConstraint("jid", "blocked", name="uq_blocks_jid_blocked"),
    )
    op.create_index("ix_blocks_blocked", "blocks", ["blocked"])


def downgrade() -> None:
    op.drop_table("blocks")
    op.drop_table("tracks")
    op.drop_table("im_users")
    op.drop_index("ix_items_item_id", "items")
    op.drop_index("ix_contacts_contact", "contacts")
    with op.batch_alter_table("contacts") as b:
        b.drop_column("pending_out")
        b.drop_column("pending_in")
        b.drop_column("sub_to")
    with op.batch_alter_table("subscriptions") as b:
        b.drop_column("delivery")
