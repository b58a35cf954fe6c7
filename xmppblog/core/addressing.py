# SPDX-License-Identifier: AGPL-3.0-or-later
"""Blog JIDs <-> owners (core layer, stdlib only).

`alice@example.org` (a user of `users_domain`) owns `alice@blog.example.org`
(a JID of the component's domain): DESIGN.md, "Addresses".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidJid
from .jid import parse


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
