# SPDX-License-Identifier: AGPL-3.0-or-later
"""Plain text <-> XEP-0277 entries for IM users (adapter layer).

A chat post becomes an Atom entry with its #hashtags as <category/> and its
@user@domain mentions as <link rel='mentioned'/>; a stored entry becomes a
readable chat body with a short post id to `reply`/`repost` to. Bodies are
plain text: nothing a user wrote is interpreted as markup (T11).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

from ..core.model import Marker, NodeRef, OutboxEvent
from ..core.text import mentions
from ..pubsub.xep_0277 import AtomDraft, author_of, entry_of, parse_entry, plain_text
from ..xmpp.namespaces import NS_ATOM, NS_THR

A = f"{{{NS_ATOM}}}"
_HASHTAG = re.compile(r"(?<![\w&])#(\w[\w-]{0,63})", re.UNICODE)
SHORT = 6


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
    for tag in dict.fromkeys(t.casefold() for t in _HASHTAG.findall(text)):
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
    entry = entry_of(ev.payload or "")
    text = plain_text(entry) if entry is not None else ""
    author = author_of(entry) or (ev.publisher or "")
    marker, _, word = (ev.subject or Marker.FOLLOW.value).partition(":")
    sid = f"#{short_id(ev.item_id or '')}"
    if marker == Marker.FOLLOW.value:
        # A remote author's posts come from a proxy address: name the real JID first.
        who = f"{author}: " if "\\40" in ev.sender.split("@", 1)[0] else ""
        return f"{who}{text}\n{sid} · reply {short_id(ev.item_id or '')} … / repost {short_id(ev.item_id or '')}"
    label = {Marker.TRACK.value: f"[tracking {word}]", Marker.MENTION.value: "[mention]",
             Marker.REPLY.value: "[reply]"}.get(marker, "")
    return f"{label} {author}: {text}\n{sid}"


def atom_id(entry: ET.Element | None) -> str:
    el = entry.find(A + "id") if entry is not None else None
    return (el.text or "").strip() if el is not None else ""


def replies_node(entry: ET.Element | None) -> NodeRef | None:
    """The comments node an entry names (<link rel='replies' href='xmpp:service?;node=…'/>)."""
    if entry is None:
        return None
    for link in entry.findall(A + "link"):
        href = link.get("href", "")
        if link.get("rel") == "replies" and href.startswith("xmpp:") and ";node=" in href:
            service, _, query = href[5:].partition("?")
            params = dict(p.split("=", 1) for p in query.split(";") if "=" in p)
            if "node" in params and service:
                return NodeRef(unquote(service), unquote(params["node"]))
    return None


def line(author: str, text: str, item_id: str) -> str:
    """One post as a line of a `timeline` or `whois` answer."""
    return f"{author}: {text} (#{short_id(item_id)})"
