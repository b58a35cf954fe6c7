# SPDX-License-Identifier: AGPL-3.0-or-later
"""Federation: cached remote nodes and the subscriptions we hold at other servers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.add_column(sa.Column("remote", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "remote_subscriptions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(2047), nullable=False),
        sa.Column("node", sa.String(1024), nullable=False),
        sa.Column("subscriber", sa.String(2047), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("checked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_remote_subscriptions"),
        sa.UniqueConstraint("service", "node", "subscriber", name="uq_remote_subscriptions_service"),
    )


def downgrade() -> None:
    op.drop_table("remote_subscriptions")
    with op.batch_alter_table("nodes") as b:
        b.drop_column("remote")
