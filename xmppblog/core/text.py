# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one tokeniser: words, hashtags and mentions in post text (core layer, stdlib only).

Tracking (`track WORD`), search and the Atom categories of chat posts all read
text through these functions, so a word tracked, searched and tagged is the
same word: NFKC-normalised and case-folded.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import BlogError
from .jid import bare

_WORD = re.compile(r"[#@]?([\w][\w'-]*)", re.UNICODE)
_SEARCH_WORD = re.compile(r"\w+", re.UNICODE)
#: a #hashtag and an @user@domain mention in text (public: the web front links exactly these)
HASHTAG = re.compile(r"(?<![\w&])#(\w[\w-]{0,63})", re.UNICODE)
MENTION = re.compile(r"(?<![\w@])@([^\s@/<>\"'&:]+@[A-Za-z0-9.-]+[A-Za-z0-9])")
MAX_TRACK_WORDS = 64
#: people a post notifies by mentioning them (a post naming a thousand users notifies none past these)
MAX_MENTIONS = 20


def normal(text: str) -> str:
    """NFKC and case-folded: how every word is compared."""
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    """The words and hashtags of `text`, '#' stripped, for tracking (each once, in order)."""
    seen: dict[str, None] = {}
    for m in _WORD.finditer(normal(text)):
        seen.setdefault(m.group(1).strip("'-"), None)
        if len(seen) >= MAX_TRACK_WORDS * 4:
            break
    return [w for w in seen if w]


def search_words(text: str) -> list[str]:
    """The searchable words of a text: word characters only."""
    return _SEARCH_WORD.findall(normal(text))


def hashtags(text: str) -> list[str]:
    """The #hashtags of `text`, normalised, each once, in order."""
    return list(dict.fromkeys(normal(t) for t in HASHTAG.findall(text)))


def mentions(text: str) -> list[str]:
    """The `@user@domain` JIDs mentioned in `text`, normalised, in order."""
    out: dict[str, None] = {}
    for m in MENTION.finditer(text):
        try:
            out.setdefault(bare(m.group(1)), None)
        except BlogError:  # anything that is not a JID is just text
            continue
    return list(out)
