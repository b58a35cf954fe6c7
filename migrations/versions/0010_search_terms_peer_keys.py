# SPDX-License-Identifier: AGPL-3.0-or-later
"""Search with indexed filters, every public post indexed, and pinned peer keys.

* Hashtags, mentions and authors become rows of `search_terms` with a B-tree
  index (kind, value, doc): a `#tag` or `from:` search reads an index range
  instead of scanning the whole full-text table.
* SQLite: documents get a plain table `search_docs` (their ids, keyed and
  indexed, and their text) and the words an external-content full-text index
  `search_text` over it, kept in step by triggers (a post is indexed by one
  INSERT); the old `search_fts` (whose key columns could not be indexed) is
  copied over and dropped. PostgreSQL keeps `search_docs` and gains `search_terms`.
* Posts that were never indexed (stored before 0008 created the index, or on a
  blog re-opened before this revision) are indexed now.
* `peer_keys`: the signing keys of other xmppblog servers, pinned when first seen.

The text rules below (plain text, hashtags, mentions) are a frozen copy of
core/text.py as of this revision: migration history never imports the app.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
import re
import unicodedata
import xml.etree.ElementTree as ET

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ATOM = "{http://www.w3.org/2005/Atom}"
MICROBLOG = "urn:xmpp:microblog:0"
_HASHTAG = re.compile(r"(?<![\w&])#(\w[\w-]{0,63})", re.UNICODE)
_MENTION = re.compile(r"(?<![\w@])@([^\s@/<>\"'&:]+@[A-Za-z0-9.-]+[A-Za-z0-9])")


def _normal(text):
    return unicodedata.normalize("NFKC", text).casefold()


def _plain(payload):
    try:
        entry = ET.fromstring(payload)
    except ET.ParseError:
        return ""
    for tag in ("content", "title"):
        el = entry.find(ATOM + tag)
        text = "".join(el.itertext()).strip() if el is not None else ""
        if text:
            return " ".join(text.split())
    return ""


def _terms(text, author):
    tags = list(dict.fromkeys(_normal(t) for t in _HASHTAG.findall(text)))
    mentions = []
    for m in _MENTION.findall(text):
        jid = _normal(m).rstrip(".")
        if jid not in mentions:
            mentions.append(jid)
    return [("t", t) for t in tags] + [("m", m) for m in mentions] + [("a", author)]


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        "peer_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(1024), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_peer_keys"),
        sa.UniqueConstraint("domain", "key_id", name="uq_peer_keys_domain"),
    )
    if sqlite:
        op.execute(
            "CREATE TABLE search_docs (id INTEGER PRIMARY KEY, service VARCHAR(2047) NOT NULL, "
            "node VARCHAR(1024) NOT NULL, item_id VARCHAR(256) NOT NULL, author VARCHAR(2047) NOT NULL, "
            "published VARCHAR(40) NOT NULL, text TEXT NOT NULL DEFAULT '', "
            "CONSTRAINT uq_search_docs_item UNIQUE (service, node, item_id))")
        # the words' index over search_docs.text (external content: the text is stored once)
        op.execute("CREATE VIRTUAL TABLE search_text USING fts5(text, content='search_docs', content_rowid='id', "
                   "tokenize='unicode61 remove_diacritics 2')")
        op.execute("CREATE TABLE search_terms (doc INTEGER NOT NULL, kind CHAR(1) NOT NULL, "
                   "value VARCHAR(2047) NOT NULL)")
        # the old documents keep their ids (the rowids of search_fts); set-based copies
        op.execute("INSERT OR IGNORE INTO search_docs (id, service, node, item_id, author, published, text) "
                   "SELECT rowid, service, node, item_id, author, published, text FROM search_fts ORDER BY rowid")
        op.execute("INSERT INTO search_terms (doc, kind, value) SELECT id, 'a', author FROM search_docs")
        lists = bind.execute(sa.text(
            "SELECT f.rowid, f.tags, f.mentions FROM search_fts f JOIN search_docs d ON d.id = f.rowid "
            "WHERE f.tags <> '' OR f.mentions <> ''")).all()
        _insert_terms(bind, [(r.rowid, "t", t) for r in lists for t in (r.tags or "").split()]
                      + [(r.rowid, "m", m) for r in lists for m in (r.mentions or "").split()])
        op.execute("DROP TABLE search_fts")
        _index_unindexed_sqlite(bind)
        op.execute("INSERT INTO search_text (search_text) VALUES ('rebuild')")
        # From here on a document is one row written (storage/search.py): its words and its author
        # row follow it in and out. Documents are never updated (an edit is a delete and an insert).
        op.execute("CREATE TRIGGER search_docs_added AFTER INSERT ON search_docs BEGIN "
                   "INSERT INTO search_text (rowid, text) VALUES (new.id, new.text); "
                   "INSERT INTO search_terms (doc, kind, value) VALUES (new.id, 'a', new.author); END")
        op.execute("CREATE TRIGGER search_docs_removed AFTER DELETE ON search_docs BEGIN "
                   "INSERT INTO search_text (search_text, rowid, text) VALUES ('delete', old.id, old.text); "
                   "DELETE FROM search_terms WHERE doc = old.id; END")
    else:
        op.execute("CREATE TABLE search_terms (doc BIGINT NOT NULL REFERENCES search_docs (id) ON DELETE CASCADE, "
                   "kind CHAR(1) NOT NULL, value VARCHAR(2047) NOT NULL)")
        _index_unindexed_postgres(bind)
        op.execute("INSERT INTO search_terms (doc, kind, value) SELECT id, 't', t FROM search_docs, "
                   "unnest(string_to_array(tags, ' ')) AS t WHERE t <> ''")
        op.execute("INSERT INTO search_terms (doc, kind, value) SELECT id, 'm', m FROM search_docs, "
                   "unnest(string_to_array(mentions, ' ')) AS m WHERE m <> ''")
        op.execute("INSERT INTO search_terms (doc, kind, value) SELECT id, 'a', author FROM search_docs")
    op.execute("CREATE INDEX ix_search_terms_lookup ON search_terms (kind, value, doc)")
    op.execute("CREATE INDEX ix_search_terms_doc ON search_terms (doc)")


def _insert_terms(bind, terms):
    for at in range(0, len(terms), 10_000):
        bind.execute(sa.text("INSERT INTO search_terms (doc, kind, value) VALUES (:d, :k, :v)"),
                     [{"d": d, "k": k, "v": v} for d, k, v in terms[at:at + 10_000]])


def _unindexed(bind):
    """Public posts (open local blogs, remote caches) that the index does not hold yet, with their text."""
    rows = bind.execute(sa.text(
        "SELECT n.service, n.node, i.item_id, i.publisher, i.published, i.payload FROM items i "
        "JOIN nodes n ON n.id = i.node_id "
        "WHERE n.node = :mb AND (n.remote OR (n.access_model = 'open' AND n.service LIKE '%@%')) "
        "AND NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.service = n.service AND d.node = n.node "
        "AND d.item_id = i.item_id) ORDER BY i.id"), {"mb": MICROBLOG}).all()
    for r in rows:
        text = _plain(r.payload)
        yield r, text, _terms(text, r.publisher)


def _index_unindexed_sqlite(bind):
    next_id = (bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM search_docs")).scalar_one() or 0) + 1
    docs, terms = [], []
    for n, (r, text, doc_terms) in enumerate(_unindexed(bind)):
        doc = next_id + n
        published = r.published if isinstance(r.published, str) else r.published.isoformat()
        docs.append({"id": doc, "s": r.service, "n": r.node, "i": r.item_id, "a": r.publisher, "p": published,
                     "t": text})
        terms += [(doc, k, v) for k, v in doc_terms]
    for at in range(0, len(docs), 10_000):
        bind.execute(sa.text("INSERT INTO search_docs (id, service, node, item_id, author, published, text) "
                             "VALUES (:id, :s, :n, :i, :a, :p, :t)"), docs[at:at + 10_000])
    _insert_terms(bind, terms)


def _index_unindexed_postgres(bind):
    docs = [{"s": r.service, "n": r.node, "i": r.item_id, "a": r.publisher, "p": r.published, "t": text,
             "tags": " ".join(v for k, v in doc_terms if k == "t"),
             "m": " ".join(v for k, v in doc_terms if k == "m")} for r, text, doc_terms in _unindexed(bind)]
    for at in range(0, len(docs), 10_000):
        bind.execute(sa.text(
            "INSERT INTO search_docs (service, node, item_id, author, published, text, tags, mentions) "
            "VALUES (:s, :n, :i, :a, :p, :t, :tags, :m)"), docs[at:at + 10_000])


def downgrade() -> None:
    op.drop_table("peer_keys")
    op.execute("DROP INDEX ix_search_terms_doc")
    op.execute("DROP INDEX ix_search_terms_lookup")
    op.execute("DROP TABLE search_terms")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER search_docs_added")
        op.execute("DROP TRIGGER search_docs_removed")
        op.execute("DROP TABLE search_text")
        op.execute("DROP TABLE search_docs")
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5("
            "text, tags, mentions, author UNINDEXED, service UNINDEXED, node UNINDEXED, "
            "item_id UNINDEXED, published UNINDEXED, tokenize='unicode61 remove_diacritics 2')")
