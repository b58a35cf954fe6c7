# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one attribution rule: whom content from another server is shown as coming from,
and which of our addresses it may be sent from (core layer, stdlib only).

Remote content is attributed to its origin: the owner of the node it was
pushed or fetched from, or, on a node a service owns (another xmppblog's
public timeline, a relay), to an author on that service's own or advertised
users domain whose entry carries a verified signature. Never to a local user
or anybody on our domains: an entry that claims one is dropped
(`author-local`). A `<link rel='via'/>` is a display hint, never a permission.
The same rule serves pushes, catch-up pages and relays (core/remote_feeds.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from .addressing import Addressing
from .errors import DroppedEntry, InvalidJid
from .jid import bare, parse
from .model import Node


@dataclass(frozen=True, slots=True)
class Claim:
    """What a remote entry says about itself, as the federation adapter read and verified it."""

    item_id: str
    author: str        # the JID its Atom author names, as written ('' if none)
    signed: bool       # it carries a signature verified against its origin's published keys


def claimed_author(raw: str) -> str:
    """The normalised bare JID an Atom author URI names, or '' (anything else names nobody)."""
    raw = raw.strip().removeprefix("xmpp:").split("?", 1)[0]
    if not raw:
        return ""
    try:
        return bare(raw)
    except InvalidJid:
        return ""


def attribute(addr: Addressing, node: Node, claim: Claim, users_domain: str | None) -> str:
    """The bare JID a remote entry on `node` (a local cache of a remote node) is attributed to.

    Args:
        users_domain: the users domain the origin advertises (an xmppblog server), if any,
            once that domain confirmed it (federation/verify.py).

    Raises:
        DroppedEntry('author-local'): the entry claims one of our users or domains.
    """
    author = claimed_author(claim.author)
    if author and addr.serves(author):
        raise DroppedEntry("author-local", f"claims local author {author[:64]}")
    if "@" in node.owner:
        return node.owner  # a person's node: whatever it carries is theirs
    if author and claim.signed and parse(author).local:
        origin_domain = parse(node.ref.service).domain
        if parse(author).domain in {origin_domain, users_domain or origin_domain}:
            return author  # a relay naming one of its own users, and signing it
    return node.owner


def sender_of(addr: Addressing, node: Node, author: str) -> str:
    """The address of ours a post of `author` on `node` is sent from as chat.

    A component may only send from its own domain (THREATS.md fact 4): a local
    user's posts come from their blog JID, anybody else's from their proxy
    address. Remote content never comes from a local blog JID.
    """
    if not node.remote:
        local = addr.blog_of(author)
        if local is not None:
            return local
    proxy = addr.proxy_of(author)
    if addr.owner_of(proxy) is not None:  # proxy_of never makes a blog JID; keep it that way
        raise AssertionError(f"proxy address {proxy} is a local blog JID")
    return proxy
