# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard's per-key limits shared by the workers of a cluster ([cluster] enabled).

* `spam_usage`: one row per limited key (a limit's name and a bare JID or a
  registrable domain) that some worker charged lately; `drained_at` is when the
  key's shared bucket is full again (spamguard/shared.py). UNLOGGED on
  PostgreSQL: after a crash the levels start empty, which only forgives a
  minute of traffic. On SQLite (one process) the table exists and stays empty.

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE UNLOGGED TABLE spam_usage (key VARCHAR(2100) NOT NULL, "
                   "drained_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (key))")
    else:
        op.create_table(
            "spam_usage",
            sa.Column("key", sa.String(2100), primary_key=True),
            sa.Column("drained_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("spam_usage")
