# SPDX-License-Identifier: AGPL-3.0-or-later
"""Post text -> linked segments for the HTML pages (adapter layer).

#hashtags link to their tag page, @user@domain mentions to the person's page
here (a user of this server) or to their `xmpp:` URI. The tokens are the
core's own (core/text.py), so a linked tag is exactly what search indexes and
a linked mention exactly whom the post notified. This module only splits and
builds addresses; it never escapes or emits markup: the templates' autoescaping
does that for every segment, link or not.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

from ..core.addressing import Addressing
from ..core.errors import BlogError
from ..core.jid import bare

# the core's own patterns, so a link is exactly what search indexes as a tag or mention
from ..core.text import HASHTAG, MENTION, normal


class Segment(NamedTuple):
    """A run of post text: `kind` is "text", "tag" or "mention"; `href` is None for text."""

    kind: str
    text: str
    href: str | None = None


def tag_href(tag: str) -> str:
    """The page of a hashtag (without '#'), in the normalised form search compares."""
    return "/tags/" + quote(normal(tag), safe="")


def person_href(jid: str, addr: Addressing) -> str:
    """Where a (normalised, bare) JID links to: a local user's page, else its xmpp: URI.

    A local blog JID (alice@blog.example.org) counts as its owner; everyone else,
    remote users and remote authors' proxy addresses alike, gets an RFC 5122 URI.
    """
    owner = jid if addr.is_local_user(jid) else addr.owner_of(jid)
    if owner is not None:
        return "/u/" + quote(owner.rpartition("@")[0], safe="")
    return "xmpp:" + quote(jid, safe="@")


def segments(text: str, addr: Addressing) -> list[Segment]:
    """Split post text into plain text, hashtag and mention segments, in order.

    Args:
        text: the post's plain text, as written (not escaped).
        addr: this server's addresses, to tell local users from everyone else.

    Returns:
        Segments whose texts, joined, are exactly `text`.
    """
    found = [(m.start(), m.end(), "tag", tag_href(m.group(1))) for m in HASHTAG.finditer(text)]
    for m in MENTION.finditer(text):
        try:
            jid = bare(m.group(1))
        except BlogError:  # as in core.text.mentions: what is not a JID stays text
            continue
        found.append((m.start(), m.end(), "mention", person_href(jid, addr)))
    out: list[Segment] = []
    at = 0
    for start, end, kind, href in sorted(found):
        if start < at:  # "@#x@example.org" holds a tag inside a mention: the earlier token wins
            continue
        if start > at:
            out.append(Segment("text", text[at:start]))
        out.append(Segment(kind, text[start:end], href))
        at = end
    if at < len(text):
        out.append(Segment("text", text[at:]))
    return out
