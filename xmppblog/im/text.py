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
from datetime import datetime

from ..core.model import EDITED, FoundPost, Marker, OutboxEvent
from ..core.posting import OUR_ID
from ..core.status import PostStatus, ServerState, ServerView
from ..core.text import hashtags, mentions
from ..protocol import NS_ATOM, NS_THR
from ..pubsub.xep_0277 import AtomDraft, entry_of, parse_entry, summary, title_and_text

A = f"{{{NS_ATOM}}}"
SHORT = 6
#: characters of a post shown in a list (timeline, search, whois)
LINE_CHARS = 300
#: bytes of text one chat answer holds at most
REPLY_BYTES = 16 * 1024


def short_id(item_id: str) -> str:
    """What users type to `reply`/`repost`: the first characters of an id of ours, else the
    whole id. Ids a client chose ('paging-1', 'paging-10', …) share prefixes that would name
    several posts; `find_post_in` resolves a whole id however short or long."""
    return item_id[:SHORT] if OUR_ID.fullmatch(item_id) else item_id


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


def written(payload: str) -> str:
    """A stored entry as a chat shows it: its own title (if any) on a line, then its text as
    written, line breaks kept ('' if it is unreadable)."""
    entry = entry_of(payload)
    if entry is None:
        return ""
    title, text = title_and_text(entry)
    return f"{title}\n{text}" if title else text


def im_body(ev: OutboxEvent) -> str:
    """The chat body of an IM_POST: who, why, whether it is an edit, the title and text, and
    the short id."""
    text = written(ev.payload or "")
    if ev.state == EDITED:
        text = f"✎ edited: {text}"
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


def at(when: datetime, now: datetime) -> str:
    """A time for a chat answer, in UTC (the server does not know the reader's zone)."""
    return f"{when:%H:%M} UTC" if when.date() == now.date() else f"{when:%Y-%m-%d %H:%M} UTC"


def _named(views: Sequence[ServerView], limit: int = 3) -> str:
    names = [v.server for v in views[:limit]] + (["…"] if len(views) > limit else [])
    return ", ".join(names)


def delivery_status(short: str, st: PostStatus, now: datetime, kept_days: int) -> str:
    """`status ID` as one sentence: "#3f9a1c reached 37 people here, 4 of 5 servers,
    1 retrying (blog.other.org, next try 14:05 UTC)"."""
    if st.nothing_sent:
        return (f"#{short} was sent to nobody: no follower was subscribed, or online for chat, when you "
                f"posted (they see it in their timeline); delivery records are kept {kept_days} days.")
    h = st.here
    parts = [f"reached {h.delivered} {'person' if h.delivered == 1 else 'people'} here"
             + (f" ({h.pending} more queued)" if h.pending else "")
             + (f", {h.failed} failed" if h.failed else "")]
    if st.servers:
        reached, total = st.count(ServerState.REACHED), len(st.servers)
        parts.append(f"{reached} of {total} server{'' if total == 1 else 's'}")
        retrying = st.of(ServerState.RETRYING)
        if retrying:
            tries = [v.tally.next_try for v in retrying if v.tally.next_try is not None]
            nxt = f", next try {at(min(tries), now)}" if tries else ""
            parts.append(f"{len(retrying)} retrying ({_named(retrying)}{nxt})")
        for state, word in ((ServerState.PENDING, "waiting"), (ServerState.FAILED, "failed")):
            views = st.of(state)
            if views:
                parts.append(f"{len(views)} {word} ({_named(views)})")
    else:
        parts.append("no other server")
    return f"#{short} " + ", ".join(parts) + "."

