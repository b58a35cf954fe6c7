# SPDX-License-Identifier: AGPL-3.0-or-later
"""Words, hashtags and mentions in post text (core layer, stdlib only)."""

from __future__ import annotations

import re

from .errors import BlogError
from .jid import bare

_WORD = re.compile(r"[#@]?([\w][\w'-]*)", re.UNICODE)
_MENTION = re.compile(r"(?<![\w@])@([^\s@/<>\"'&:]+@[A-Za-z0-9.-]+[A-Za-z0-9])")
MAX_TRACK_WORDS = 64


def words(text: str) -> list[str]:
    """Lower-cased words and hashtags of `text`, '#' stripped, for tracking."""
    seen: dict[str, None] = {}
    for m in _WORD.finditer(text.casefold()):
        seen.setdefault(m.group(1).strip("'-"), None)
        if len(seen) >= MAX_TRACK_WORDS * 4:
            break
    return [w for w in seen if w]


def mentions(text: str) -> list[str]:
    """The `@user@domain` JIDs mentioned in `text`, normalised, in order."""
    out: dict[str, None] = {}
    for m in _MENTION.finditer(text):
        try:
            out.setdefault(bare(m.group(1)), None)
        except BlogError:  # anything that is not a JID is just text
            continue
    return list(out)

