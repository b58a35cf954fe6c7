# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0277 Atom entries: validate a client's entry, render the stored one (adapter layer).

`parse_entry` checks namespace, size, shape and required fields and returns
an `AtomDraft` before anything changes (STYLE.md §2). `AtomCodec.render`
implements core.ports.EntryCodec: it applies the server's `Stamp` (atom:id,
published, updated, author, alternate and replies links) and serialises.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Protocol

from ..core import errors
from ..core.accounts import Export
from ..core.model import Stamp
from ..core.uri import xmpp_uri
from ..core.ports import EntryFacts
from ..protocol import NS_ATOM, NS_MICROBLOG, NS_THR, NS_XMPPBLOG
from .sanitize import sanitize_entry

A = f"{{{NS_ATOM}}}"
#: the author's consent to network-wide indexes, under the signature (core/discovery.py)
DISCOVERABLE = f"{{{NS_XMPPBLOG}}}discoverable"
MAX_ENTRY_DEPTH = 16

ET.register_namespace("thr", NS_THR)


class SignsEntries(Protocol):
    def sign(self, entry: ET.Element) -> None: ...


@dataclass(frozen=True, slots=True)
class AtomDraft:
    entry: ET.Element


def serialise(el: ET.Element, namespace: str) -> str:
    """`el` as text with `namespace` as the default namespace, or with explicit prefixes when an
    element in no namespace makes a default namespace impossible."""
    try:
        return ET.tostring(el, encoding="unicode", default_namespace=namespace)
    except ValueError:
        return ET.tostring(el, encoding="unicode")


def within_depth(el: ET.Element, limit: int) -> bool:
    """Whether no element below `el` (itself at depth 1) is deeper than `limit` (iteratively: a
    hostile payload cannot exhaust the recursion limit)."""
    stack = [(el, 1)]
    while stack:
        e, d = stack.pop()
        if d > limit:
            return False
        stack.extend((c, d + 1) for c in e)
    return True


def _text(el: ET.Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def parse_entry(item: ET.Element, max_bytes: int) -> AtomDraft:
    """Validate the payload of a published <item/>.

    Raises:
        InvalidPayload: not exactly one Atom <entry/>, too deep, or no text.
        PayloadTooBig: the entry is larger than `max_bytes`.
    """
    children = list(item)
    if len(children) != 1:
        raise errors.InvalidPayload("an item must carry exactly one Atom <entry/>")
    entry = children[0]
    if entry.tag != A + "entry":
        raise errors.InvalidPayload(f"expected an Atom entry ({NS_ATOM}), got {entry.tag[:80]}")
    if not within_depth(entry, MAX_ENTRY_DEPTH):
        raise errors.InvalidPayload(f"the entry is nested deeper than {MAX_ENTRY_DEPTH} levels")
    if len(ET.tostring(entry, encoding="utf-8")) > max_bytes:
        raise errors.PayloadTooBig(f"entries are limited to {max_bytes} bytes")
    title, content = entry.find(A + "title"), entry.find(A + "content")
    if not _text(title) and not _text(content):
        raise errors.InvalidPayload("an entry needs a non-empty <title/> or <content/>")
    for el in (title, content):
        if el is not None and el.get("type", "text") not in ("text", "html", "xhtml"):
            raise errors.InvalidPayload("title and content types are text, html or xhtml")
    return AtomDraft(copy.deepcopy(entry))


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def _replace(entry: ET.Element, tag: str, text: str, index: int) -> None:
    for old in entry.findall(A + tag):
        entry.remove(old)
    el = ET.Element(A + tag)
    el.text = text
    entry.insert(index, el)


def plain_text(entry: ET.Element) -> str:
    """The readable text of an entry: its content, else its title."""
    text = _text(entry.find(A + "content")) or _text(entry.find(A + "title"))
    return " ".join(text.split())


#: XHTML elements that end a line of the text they hold (XEP-0071's block elements)
_BLOCKS = frozenset({"p", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol",
                     "dl", "dt", "dd"})


class _HtmlText(HTMLParser):
    """The text of escaped HTML (an Atom `html` construct), its lines kept."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br" or tag in _BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def _xhtml_lines(el: ET.Element, out: list[str]) -> None:
    name = el.tag.rsplit("}", 1)[-1]
    if name == "br" or name in _BLOCKS:
        out.append("\n")
    out.append(el.text or "")
    for child in el:
        _xhtml_lines(child, out)
        out.append(child.tail or "")
    if name in _BLOCKS:
        out.append("\n")


def _written(el: ET.Element) -> str:
    """The text of an Atom text construct with its line breaks (RFC 4287 §3.1): spaces within a
    line and blank lines beyond one collapse, as a reader sees them."""
    kind = el.get("type", "text")
    if kind == "xhtml":
        parts: list[str] = []
        for child in el:
            _xhtml_lines(child, parts)
            parts.append(child.tail or "")
        raw = (el.text or "") + "".join(parts) if len(el) else (el.text or "")
    elif kind == "html":
        parser = _HtmlText()
        parser.feed(el.text or "")
        parser.close()
        raw = "".join(parser.out)
    else:
        raw = el.text or ""
    lines = [" ".join(line.split()) for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = "\n".join(lines).strip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def title_and_text(entry: ET.Element) -> tuple[str | None, str]:
    """(title, text) of an entry as its author wrote them, line breaks kept.

    The title is None when the entry has none of its own: XEP-0277 puts a post of one text in
    <title/>, and a title derived from the content (ours, `AtomCodec.render`, or a client's)
    only repeats its start. Of several <content/> (Libervia sends text and xhtml), the text one.
    """
    contents = {c.get("type", "text"): c for c in entry.findall(A + "content")}
    content = next((contents[k] for k in ("text", "xhtml", "html") if k in contents), None)
    title_el = entry.find(A + "title")
    title = _written(title_el) if title_el is not None else ""
    text = _written(content) if content is not None else ""
    if not text:
        return None, title
    flat_title, flat_text = " ".join(title.split()), " ".join(text.split())
    if not flat_title or flat_text.startswith(flat_title.rstrip("…")):
        return None, text
    return title, text


def entry_of(payload: str) -> ET.Element | None:
    try:
        return ET.fromstring(payload)
    except ET.ParseError:
        return None


def summary(payload: str) -> str:
    """The plain text of a stored entry ('' if it is unreadable)."""
    entry = entry_of(payload)
    return plain_text(entry) if entry is not None else ""


def author_of(entry: ET.Element | None) -> str:
    """The JID an entry's Atom author names, as written: a claim, never an attribution
    (core/attribution.py decides whom remote content is shown as)."""
    uri = entry.find(f"{A}author/{A}uri") if entry is not None else None
    return (uri.text or "").removeprefix("xmpp:") if uri is not None else ""


def link(entry: ET.Element | None, rel: str) -> str:
    """The href of the entry's first <link rel=rel/>, or ''."""
    for el in entry.findall(A + "link") if entry is not None else ():
        if el.get("rel", "alternate") == rel:
            return el.get("href", "")
    return ""


class AtomCodec:
    """core.ports.EntryCodec for XEP-0277 entries; signs what it stamps when given a signer."""

    def __init__(self, signer: SignsEntries | None = None) -> None:
        self.signer = signer

    def text(self, draft: object) -> str:
        assert isinstance(draft, AtomDraft)
        return plain_text(draft.entry)

    def raw(self, draft: object) -> str:
        assert isinstance(draft, AtomDraft)
        return serialise(draft.entry, NS_ATOM)

    def summary(self, payload: str) -> str:
        return summary(payload)

    def facts(self, payload: str) -> EntryFacts:
        entry = entry_of(payload)
        if entry is None:
            return EntryFacts("", "")
        atom_id = entry.find(A + "id")
        return EntryFacts((atom_id.text or "").strip() if atom_id is not None else "", link(entry, "replies"),
                          entry.find(DISCOVERABLE) is not None)

    def render(self, draft: object, stamp: Stamp) -> str:
        assert isinstance(draft, AtomDraft)
        entry = copy.deepcopy(draft.entry)
        entry.tail = None
        sanitize_entry(entry)  # XEP-0277 §Security: only safe markup is stored, signed and served
        title = entry.find(A + "title")
        if title is None or not _text(title):
            # RFC 4287 requires a title: derive it from the content.
            text = _text(entry.find(A + "content"))
            if title is None:
                title = ET.Element(A + "title")
                entry.insert(0, title)
            for child in list(title):
                title.remove(child)
            title.set("type", "text")
            title.text = text[:140]
        _replace(entry, "id", stamp.atom_id, 1)
        _replace(entry, "published", _iso(stamp.published), 2)
        _replace(entry, "updated", _iso(stamp.updated), 3)
        name = ""
        for old in entry.findall(A + "author"):
            name = name or _text(old.find(A + "name"))
            entry.remove(old)
        author = ET.Element(A + "author")
        ET.SubElement(author, A + "name").text = name or stamp.author_name
        ET.SubElement(author, A + "uri").text = f"xmpp:{stamp.author_jid}"
        entry.insert(4, author)
        for link in entry.findall(A + "link"):
            rel, href = link.get("rel", "alternate"), link.get("href", "")
            if rel == "replies" or (rel == "alternate" and href.startswith("xmpp:")):
                entry.remove(link)
        entry.append(ET.Element(A + "link", {"rel": "alternate", "href": stamp.self_uri}))
        if stamp.replies_uri:
            entry.append(ET.Element(A + "link", {"rel": "replies", "title": "comments",
                                                 "href": stamp.replies_uri}))
        # only the server says whether the author consented, never the client's draft
        for parent in list(entry.iter()):
            for claimed in parent.findall(DISCOVERABLE):
                parent.remove(claimed)
        if stamp.discoverable:
            entry.append(ET.Element(DISCOVERABLE))
        if self.signer is not None:
            self.signer.sign(entry)  # last, over the final form (pubsub/signing.py)
        return serialise(entry, NS_ATOM)


def export_feed(export: Export, generated: datetime) -> str:
    """A user's export as one Atom feed document (RFC 4287): their posts, then the comments
    they wrote, each newest first and each entry exactly as stored (signature included), so
    the file is a faithful copy another server or a feed reader can read back."""
    feed = ET.Element(A + "feed")
    ET.SubElement(feed, A + "title").text = f"{export.user}: posts and comments"
    ET.SubElement(feed, A + "id").text = xmpp_uri(export.blog, NS_MICROBLOG)
    stamps = [p.item.updated for p in export.posts + export.comments]
    ET.SubElement(feed, A + "updated").text = _iso(max(stamps, default=generated))
    author = ET.SubElement(feed, A + "author")
    ET.SubElement(author, A + "name").text = export.user
    ET.SubElement(author, A + "uri").text = f"xmpp:{export.user}"
    ET.SubElement(feed, A + "generator").text = "xmppblog export"
    for post in export.posts + export.comments:
        entry = entry_of(post.item.payload)
        if entry is not None:
            feed.append(entry)
    body = serialise(feed, NS_ATOM)
    return "<?xml version='1.0' encoding='utf-8'?>\n" + body + "\n"
