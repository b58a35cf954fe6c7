# SPDX-License-Identifier: AGPL-3.0-or-later
"""Outbox ids are never reused: they name notification stanzas (`n<event>`, `ob<row>`).

A notification's stanza id is its outbox id, and clients and archives
de-duplicate on (sender, id). SQLite gives a table without AUTOINCREMENT the
largest rowid plus one, so once the outbox emptied a post, its edit and its
retraction could all go out as `n1`; a late bounce could also name a newer row
that took the id of the one bounced. SQLite's AUTOINCREMENT keeps the largest
id ever used (in `sqlite_sequence`), as PostgreSQL's sequences always did.

Both counters then start at least at the upgrade's time in milliseconds: the
ids sent before were small and repeated (a server would have had to plan more
than one notification per millisecond since 1970 to reach it), and a database
created again for the same service does not repeat the ids of the one before.

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-10
"""
import time

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("outbox_events", "outbox")


def upgrade() -> None:
    bind = op.get_bind()
    floor = int(time.time() * 1000)
    if bind.dialect.name == "sqlite":
        for table in TABLES:
            # the table is copied with its ids, so sqlite_sequence starts at the largest
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass
        for table in TABLES:
            seq = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}).scalar()
            if seq is None:
                bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)"),
                             {"t": table, "n": floor})
            elif seq < floor:
                bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :n WHERE name = :t"), {"t": table, "n": floor})
    else:
        for table in TABLES:
            bind.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST(:n, (SELECT COALESCE(MAX(id), 0) FROM {table})))"), {"n": floor})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
                pass
