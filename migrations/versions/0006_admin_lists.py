# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run-time domain block/allow lists and abuse reports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "domain_policies",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(1024), nullable=False),
        sa.Column("policy", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(2047), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_domain_policies"),
        sa.UniqueConstraint("domain", "policy", name="uq_domain_policies_domain"),
    )
    op.create_table(
        "reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reporter", sa.String(2047), nullable=False),
        sa.Column("target", sa.String(2047), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_table("domain_policies")
