# SPDX-License-Identifier: AGPL-3.0-or-later
"""Versions of state every worker of a cluster keeps in memory and must reload when another
worker changes it (`cluster_versions`): a real-time block list updated by a push, which only
the worker holding the service JID's slot receives.

Revision ID: 0015
Revises: 0014
Create Date: 2027-01-20
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_versions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_versions")
