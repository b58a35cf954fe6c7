# SPDX-License-Identifier: AGPL-3.0-or-later
"""xmpp: URIs (RFC 5122, XEP-0060 §12.21): the one builder and the one parser (core layer)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

from .errors import InvalidJid
from .jid import parse
from .model import NodeRef


def xmpp_uri(service: str, node: str, item: str | None = None) -> str:
    """The URI of a node, or of an item on it."""
    uri = f"xmpp:{service}?;node={quote(node, safe='')}"
    return uri + (f";item={quote(item, safe='')}" if item is not None else "")


@dataclass(frozen=True, slots=True)
class XmppUri:
    jid: str                 # the normalised bare JID
    node: str | None = None
    item: str | None = None

    @property
    def ref(self) -> NodeRef | None:
        return NodeRef(self.jid, self.node) if self.node is not None else None


def parse_uri(raw: str) -> XmppUri:
    """A JID, or an xmpp: URI with optional ;node= and ;item=.

    Raises:
        InvalidJid: not a JID or URI we can read.
    """
    raw = raw.strip()
    if not raw.startswith("xmpp:"):
        return XmppUri(parse(raw).bare)
    path, _, query = raw[5:].partition("?")
    params: dict[str, str] = {}
    for part in query.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            params[key] = unquote(value)
    try:
        jid = parse(unquote(path)).bare
    except InvalidJid:
        raise InvalidJid(f"{raw[:64]!r} is not an xmpp: URI of a JID") from None
    return XmppUri(jid, params.get("node"), params.get("item"))
