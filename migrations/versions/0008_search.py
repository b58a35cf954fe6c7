# SPDX-License-Identifier: AGPL-3.0-or-later
"""Full-text search of public posts: SQLite FTS5, or PostgreSQL tsvector + GIN.

The two backends differ, so does the DDL; storage/search.py holds the queries.
These tables are not in tables.py (dialect-specific): tests/migrations skips them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5("
            "text, tags, mentions, author UNINDEXED, service UNINDEXED, node UNINDEXED, "
            "item_id UNINDEXED, published UNINDEXED, tokenize='unicode61 remove_diacritics 2')")
    else:
        op.execute(
            "CREATE TABLE search_docs ("
            "id BIGSERIAL PRIMARY KEY, service VARCHAR(2047) NOT NULL, node VARCHAR(1024) NOT NULL, "
            "item_id VARCHAR(256) NOT NULL, author VARCHAR(2047) NOT NULL, published TIMESTAMPTZ NOT NULL, "
            "text TEXT NOT NULL, tags TEXT NOT NULL, mentions TEXT NOT NULL, "
            "tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', text || ' ' || tags)) STORED, "
            "CONSTRAINT uq_search_docs_item UNIQUE (service, node, item_id))")
        op.execute("CREATE INDEX ix_search_docs_tsv ON search_docs USING GIN (tsv)")
        op.execute("CREATE INDEX ix_search_docs_published ON search_docs (published)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE search_fts")
    else:
        op.execute("DROP TABLE search_docs")
