# SPDX-License-Identifier: AGPL-3.0-or-later
"""Each user's choice for network-wide indexes (issue #17, core/discovery.py): NULL until
they make one, and then the admin's `[firehose] default_discoverable` applies; and when
they last withdrew it (posts from before never carry consent again).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("discoverable", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("consent_withdrawn_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("consent_withdrawn_at")
        batch.drop_column("discoverable")
