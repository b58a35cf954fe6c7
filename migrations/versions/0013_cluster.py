# SPDX-License-Identifier: AGPL-3.0-or-later
"""Many workers on one database ([cluster] enabled, PostgreSQL): the outbox's shards,
the workers and their leases, and who is online as every worker saw it.

* `outbox_events.shard`: the shard of the notification's sender (core/shards.py);
  rows planned before this revision stay in shard 0.
* `cluster_workers`: each live worker's heartbeat, and whether it can send (a
  connection of it holds a slot of the host's).
* `cluster_leases`: who holds each outbox shard, and until when.
* `online_contacts`: a contact some worker saw online; UNLOGGED on PostgreSQL
  (it is rebuilt from presence after a crash, so it need not be in the WAL).

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-20
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0"))
    # what is due reads only rows not yet sent: the rows kept to match bounces stay out of the scan
    op.create_index("ix_outbox_unsent_next_at", "outbox", ["next_at"], postgresql_where=sa.text("sent_at IS NULL"),
                    sqlite_where=sa.text("sent_at IS NULL"))
    op.create_table(
        "cluster_workers",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("serving", sa.Boolean(), nullable=False, server_default=sa.false()),
        # which process beats under this id: a second live one with the same id is refused
        sa.Column("token", sa.String(32), nullable=False, server_default=""),
    )
    op.create_table(
        "cluster_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(160), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE UNLOGGED TABLE online_contacts (contact VARCHAR(3071) NOT NULL, "
                   "worker VARCHAR(160) NOT NULL, seen_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (contact, worker))")
    else:
        op.create_table(
            "online_contacts",
            sa.Column("contact", sa.String(3071), primary_key=True),
            sa.Column("worker", sa.String(160), primary_key=True),
            sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        )
    # what one worker saw is forgotten at once when it leaves or is found dead
    op.create_index("ix_online_contacts_worker", "online_contacts", ["worker"])


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent_next_at", table_name="outbox")
    op.drop_index("ix_online_contacts_worker", table_name="online_contacts")
    op.drop_table("online_contacts")
    op.drop_table("cluster_leases")
    op.drop_table("cluster_workers")
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("shard")
