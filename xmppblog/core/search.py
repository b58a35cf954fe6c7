# SPDX-License-Identifier: AGPL-3.0-or-later
"""Search queries and indexed documents (core layer, no I/O).

Query syntax: plain words (all must match), "a phrase", #hashtag,
@user@domain (mentions), from:user@domain (author). `storage/search.py`
turns a `SearchQuery` into SQLite FTS5 or PostgreSQL full-text SQL.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from . import errors
from .jid import bare
from .model import NodeRef
from .text import mentions

MAX_QUERY = 256
MAX_TERMS = 12
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)
_HASHTAG = re.compile(r"(?<![\w&])#(\w[\w-]{0,63})", re.UNICODE)


def words_of(text: str) -> list[str]:
    """The searchable words of a text: NFKC, case-folded, word characters only."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True, slots=True)
class SearchDoc:
    ref: NodeRef
    item_id: str
    author: str
    published: datetime
    text: str
    tags: tuple[str, ...]
    mentions: tuple[str, ...]

    @classmethod
    def of(cls, ref: NodeRef, item_id: str, author: str, published: datetime, text: str) -> SearchDoc:
        tags = tuple(dict.fromkeys(t.casefold() for t in _HASHTAG.findall(text)))
        return cls(ref, item_id, author, published, text, tags, tuple(mentions(text)))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    tags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    author: str | None = None
    by_relevance: bool = False
    raw: str = field(default="", compare=False)

    @property
    def empty(self) -> bool:
        return not (self.words or self.phrases or self.tags or self.mentions or self.author)


def parse_query(q: str, by_relevance: bool = False) -> SearchQuery:
    """Parse a user's query.

    Raises:
        BadRequest: empty, too long, too many terms, or a malformed from:/@ JID.
    """
    q = q.strip()
    if not q:
        raise errors.BadRequest("search for something: words, \"a phrase\", #tag, @user@domain, from:user@domain")
    if len(q) > MAX_QUERY:
        raise errors.BadRequest(f"queries are limited to {MAX_QUERY} characters")
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    tags: list[str] = []
    ments: list[str] = []
    author = None
    for m in _TOKEN.finditer(q):
        phrase, token = m.group(1), m.group(2)
        if phrase is not None:
            ws = tuple(words_of(phrase))
            if ws:
                phrases.append(ws)
        elif token.casefold().startswith("from:"):
            author = bare(token[5:])
        elif token.startswith("#") and len(token) > 1:
            tags += words_of(token[1:])[:1]
        elif token.startswith("@") and "@" in token[1:]:
            ments.append(bare(token[1:]))
        else:
            words += words_of(token)
    if len(words) + len(phrases) + len(tags) + len(ments) > MAX_TERMS:
        raise errors.BadRequest(f"use at most {MAX_TERMS} search terms")
    query = SearchQuery(tuple(words), tuple(phrases), tuple(tags), tuple(ments), author, by_relevance, q)
    if query.empty:
        raise errors.BadRequest("nothing to search for in that query")
    return query
