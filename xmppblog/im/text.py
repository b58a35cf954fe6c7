# SPDX-License-Identifier: AGPL-3.0-or-later
"""Plain text <-> XEP-0277 entries for IM users (adapter layer).

A chat post becomes an Atom entry with its #hashtags as <category/> and its
@user@domain mentions as <link rel='mentioned'/>; a stored entry becomes a
readable chat body with a short post id to `reply`/`repost` to, naming the
author the post is attributed to (never what the entry claims). Bodies are
plain text: nothing a user wrote is interpreted as markup (T11). Answers that
list things (timelines, search results, followers) are cut at a byte budget
and say how much was left out, so no answer nears the stanza limit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ..core.model import FoundPost, Marker, OutboxEvent
from ..core.text import hashtags, mentions
from ..protocol import NS_ATOM, NS_THR
from ..pubsub.xep_0277 import AtomDraft, parse_entry, summary

A = f"{{{NS_ATOM}}}"
SHORT = 6
#: characters of a post shown in a list (timeline, search, whois)
LINE_CHARS = 300
#: bytes of text one chat answer holds at most
REPLY_BYTES = 16 * 1024


def short_id(item_id: str) -> str:
    """What users type to `reply`/`repost`: the whole id if short, else its first characters."""
    return item_id if len(item_id) <= SHORT + 2 else item_id[:SHORT]


def draft_from_text(text: str, max_bytes: int, in_reply_to: tuple[str, str] | None = None,
                    via: str | None = None) -> AtomDraft:
    """An Atom draft for a chat post.

    Args:
        in_reply_to: (atom id, xmpp URI) of the post answered (thr:in-reply-to).
        via: the xmpp URI of a reposted entry (link rel='via').

    Raises:
        InvalidPayload (empty), PayloadTooBig.
    """
    entry = ET.Element(A + "entry")
    title = ET.SubElement(entry, A + "title", {"type": "text"})
    title.text = text
    for tag in hashtags(text):
        ET.SubElement(entry, A + "category", {"term": tag})
    for jid in mentions(text):
        ET.SubElement(entry, A + "link", {"rel": "mentioned", "href": f"xmpp:{jid}"})
    if in_reply_to:
        ET.SubElement(entry, f"{{{NS_THR}}}in-reply-to", {"ref": in_reply_to[0], "href": in_reply_to[1]})
    if via:
        ET.SubElement(entry, A + "link", {"rel": "via", "href": via})
    item = ET.Element("item")
    item.append(entry)
    return parse_entry(item, max_bytes)


def im_body(ev: OutboxEvent) -> str:
    """The chat body of an IM_POST: who, why, the text and the short id."""
    text = summary(ev.payload or "")
    author = ev.publisher or ""
    marker, _, word = (ev.subject or Marker.FOLLOW.value).partition(":")
    sid = f"#{short_id(ev.item_id or '')}"
    if marker == Marker.FOLLOW.value:
        # A remote author's posts come from a proxy address: name the real JID first.
        who = f"{author}: " if "\\40" in ev.sender.split("@", 1)[0] else ""
        return f"{who}{text}\n{sid} · reply {short_id(ev.item_id or '')} … / repost {short_id(ev.item_id or '')}"
    label = {Marker.TRACK.value: f"[tracking {word}]", Marker.MENTION.value: "[mention]",
             Marker.REPLY.value: "[reply]"}.get(marker, "")
    return f"{label} {author}: {text}\n{sid}"


def clip(text: str, limit: int = LINE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def line(author: str, text: str, item_id: str) -> str:
    """One post as a line of a `timeline`, `search` or `whois` answer."""
    return f"{author}: {clip(text)} (#{short_id(item_id)})"


def post_line(post: FoundPost) -> str:
    return line(post.item.publisher, summary(post.item.payload), post.item.item_id)


def within_budget(head: str, parts: Sequence[str], sep: str = "\n", budget: int = REPLY_BYTES,
                  more: str = "… and {n} more", tail: str = "") -> str:
    """`head`, as many `parts` as fit in `budget` bytes (joined by `sep`), then how many were
    left out, then `tail`."""
    kept: list[str] = []
    used = len(head.encode()) + len(tail.encode())
    for n, text in enumerate(parts):
        size = len(text.encode()) + len(sep)
        if used + size > budget:
            kept.append(more.format(n=len(parts) - n))
            break
        kept.append(text)
        used += size
    body = sep.join(kept)
    if head:
        body = head + ("\n" if sep == "\n" else " ") + body
    return body + tail
