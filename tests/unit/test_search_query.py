# SPDX-License-Identifier: AGPL-3.0-or-later
"""Search query syntax."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xmppblog.core import errors
from xmppblog.core.model import NodeRef
from xmppblog.core.search import SearchDoc, parse_query


def test_query_syntax():
    q = parse_query('Hello "Open Standards" #XMPP @Bob@Example.org from:alice@example.org world')
    assert q.words == ("hello", "world")
    assert q.phrases == (("open", "standards"),)
    assert q.tags == ("xmpp",)
    assert q.mentions == ("bob@example.org",)
    assert q.author == "alice@example.org"


@pytest.mark.parametrize("text", ["#foo-bar", "#Foo-Bar", "#日本語-タグ", "#x_1-2"])
def test_a_hashtag_is_searched_as_it_is_indexed(text):
    """Tag pages link #foo-bar to a search for it: the query must read the tag as the index does."""
    doc = SearchDoc.of(NodeRef("a@blog.example.org", "urn:xmpp:microblog:0"), "1", "a@example.org",
                       datetime(2026, 1, 1, tzinfo=UTC), f"post {text}")
    assert parse_query(text).tags == doc.tags[:1]


@pytest.mark.parametrize("bad", ["", "   ", "x" * 300, "#", '""', " ".join(["w"] * 13), "from:@@"])
def test_bad_queries(bad):
    with pytest.raises((errors.BadRequest, errors.InvalidJid)):
        parse_query(bad)


def test_document_extracts_tags_and_mentions():
    d = SearchDoc.of(NodeRef("a@blog.e.org", "n"), "1", "a@e.org", datetime.now(UTC),
                     "Going to #FOSDEM with @bob@example.org #fosdem")
    assert d.tags == ("fosdem",) and d.mentions == ("bob@example.org",)
