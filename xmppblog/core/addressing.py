# SPDX-License-Identifier: AGPL-3.0-or-later
"""Blog JIDs <-> owners (core layer, stdlib only).

`alice@example.org` (a user of `users_domain`) owns `alice@blog.example.org`
(a JID of the component's domain): DESIGN.md, "Addresses".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidJid
from .jid import parse, stored_bare


@dataclass(frozen=True, slots=True)
class Addressing:
    service_jid: str
    users_domain: str

    def owner_of(self, blog_jid: str) -> str | None:
        """The local user who owns `blog_jid`, or None if it is no user's blog."""
        try:
            j = parse(blog_jid)
        except InvalidJid:
            return None
        # A local part holding an escaped '@' (XEP-0106 '\\40') stands for a
        # remote author, never a local owner.
        if j.domain != self.service_jid or not j.local or "\\40" in j.local or "@" in j.local:
            return None
        return f"{j.local}@{self.users_domain}"

    def blog_of(self, user_jid: str) -> str | None:
        """The blog JID of a local user, or None for users of other domains."""
        try:
            j = parse(user_jid)
        except InvalidJid:
            return None
        if j.domain != self.users_domain or not j.local:
            return None
        return f"{j.local}@{self.service_jid}"

    def is_local_user(self, user_jid: str) -> bool:
        return self.blog_of(user_jid) is not None

    def serves(self, stored_jid: str) -> bool:
        """Is this (already normalised) JID on one of our domains: a local user or one of our
        addresses? Cheap enough for every recipient of a post (no re-validation)."""
        return stored_bare(stored_jid).rpartition("@")[2] in (self.users_domain, self.service_jid)

    def proxy_of(self, remote_bare: str) -> str:
        """The local address standing for a remote author (XEP-0106-escaped bare JID).

        A component may only send from its own domain (THREATS.md fact 4), so IM
        deliveries of remote posts come from `bob\\40example.net@blog.example.org`.
        A JID that is only a domain (a pubsub service) gets an escaped '@' in front
        (`\\40pubsub.example.net@blog.example.org`): every proxy address holds one, so
        none can ever be a local user's blog JID (`owner_of` refuses them all).
        """
        local = escape_node(remote_bare if "@" in remote_bare else "@" + remote_bare)
        return f"{local}@{self.service_jid}"

    def remote_of(self, proxy_jid: str) -> str | None:
        """The remote bare JID a proxy address stands for, or None."""
        try:
            j = parse(proxy_jid)
        except InvalidJid:
            return None
        if j.domain != self.service_jid or "\\40" not in j.local:
            return None
        try:
            return parse(unescape_node(j.local).removeprefix("@")).bare
        except InvalidJid:
            return None


# XEP-0106 §3.2: the characters a JID local part cannot hold, and their escapes.
_ESCAPES = {" ": "\\20", '"': "\\22", "&": "\\26", "'": "\\27", "/": "\\2f", ":": "\\3a",
            "<": "\\3c", ">": "\\3e", "@": "\\40", "\\": "\\5c"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def escape_node(text: str) -> str:
    """XEP-0106 escaping of a string into a JID local part."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\" and text[i + 1:i + 3].lower() not in {e[1:] for e in _ESCAPES.values()}:
            out.append(ch)  # a backslash not followed by an escape sequence stays
        else:
            out.append(_ESCAPES.get(ch, ch))
    return "".join(out)


def unescape_node(local: str) -> str:
    """Inverse of `escape_node`."""
    out, i = [], 0
    while i < len(local):
        seq = local[i:i + 3].lower()
        if seq in _UNESCAPES:
            out.append(_UNESCAPES[seq])
            i += 3
        else:
            out.append(local[i])
            i += 1
    return "".join(out)
