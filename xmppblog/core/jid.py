# SPDX-License-Identifier: AGPL-3.0-or-later
"""JID parsing and the one normalisation function (core layer, stdlib only).

Every JID that enters the core from a payload (subscribe `jid=`, affiliation
lists, form fields) goes through `normalize`/`bare`, so that block lists,
consent records and ownership compare equal for case, Unicode-form and
trailing-dot variants (THREATS.md fact 3, T13). It approximates RFC 7622
PRECIS profiles with NFKC + casefold for local and domain parts.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .errors import InvalidJid

_FORBIDDEN_LOCAL = set("\"&'/:<>@")
#: no domain (a host name, an IDN, or an IP literal) holds these
_FORBIDDEN_DOMAIN = set("\"&'<>\\@/ ")
_MAX_PART = 1023


@dataclass(frozen=True, slots=True)
class Jid:
    local: str
    domain: str
    resource: str = ""

    @property
    def bare(self) -> str:
        return f"{self.local}@{self.domain}" if self.local else self.domain

    def __str__(self) -> str:
        return f"{self.bare}/{self.resource}" if self.resource else self.bare


def _clean(part: str, what: str, raw: str) -> str:
    if len(part.encode("utf-8", "surrogatepass")) > _MAX_PART:
        raise InvalidJid(f"{what} of {raw[:64]!r} is too long")
    for ch in part:
        cat = unicodedata.category(ch)
        if cat[0] in "CZ":
            raise InvalidJid(f"{what} of {raw[:64]!r} contains a space or control character")
    return part


def parse(raw: str) -> Jid:
    """Parse and normalise a JID.

    Args:
        raw: the JID as received.

    Returns:
        The normalised `Jid`.

    Raises:
        InvalidJid: if it is empty, too long or contains forbidden characters.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidJid("empty JID")
    raw = raw.strip()
    head, slash, resource = raw.partition("/")
    local, at, domain = head.rpartition("@")
    if not at:
        local, domain = "", head
    elif not local:
        raise InvalidJid(f"{raw[:64]!r} has an empty local part")
    domain = unicodedata.normalize("NFKC", domain).casefold().rstrip(".")
    if not domain or ".." in domain or domain.startswith("."):
        raise InvalidJid(f"{raw[:64]!r} has no valid domain")
    _clean(domain, "domain", raw)
    if any(c in _FORBIDDEN_DOMAIN for c in domain):
        raise InvalidJid(f"{raw[:64]!r} has an invalid domain")
    if local:
        local = unicodedata.normalize("NFKC", local).casefold()
        if any(c in _FORBIDDEN_LOCAL for c in local):
            raise InvalidJid(f"{raw[:64]!r} has a forbidden character in its local part")
        _clean(local, "local part", raw)
    if slash:
        if not resource:
            raise InvalidJid(f"{raw[:64]!r} has an empty resource")
        resource = unicodedata.normalize("NFC", resource)
        _clean(resource.replace(" ", "x"), "resource", raw)
    return Jid(local, domain, resource)


def bare(raw: str) -> str:
    """The normalised bare JID of `raw`. Raises InvalidJid like `parse`."""
    return parse(raw).bare


def stored_bare(jid: str) -> str:
    """The bare part of a JID that was normalised before it was stored (no re-validation).

    The fan-out hot path reads thousands of stored JIDs per post; `bare()` would
    re-run the Unicode checks on each.
    """
    return jid.partition("/")[0]


def normalize(raw: str) -> str:
    """The normalised full (or bare) JID of `raw`. Raises InvalidJid like `parse`."""
    return str(parse(raw))
