# SPDX-License-Identifier: AGPL-3.0-or-later
"""Real-time block lists (policy layer): the one owner of their state.

The admin names the lists (`[spamguard] rtbl_services`); each item id of such
a node is the SHA-256 (hex) of a blocked bare JID or domain, as the XMPP
community's block lists publish them. Only pushes from those exact
(service, node) pairs change the entries, through `apply`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from .domains import parents

log = logging.getLogger(__name__)


def sha256_hex(text: str) -> str:
    """How RTBL items name what they block."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class BlockLists:
    def __init__(self, sources: Iterable[tuple[str, str]] = ()) -> None:
        #: (service JID, node) pairs whose items are block list entries
        self.sources = frozenset(sources)
        self._entries: dict[tuple[str, str], set[str]] = {source: set() for source in self.sources}

    def is_source(self, service: str, node: str) -> bool:
        return (service, node) in self.sources

    def apply(self, source: tuple[str, str], added: Iterable[str] = (), removed: Iterable[str] = (),
              purge: bool = False) -> None:
        """A list's new state: items added, retracted, or (purge) all gone."""
        entries = self._entries.get(source)
        if entries is None:
            return
        if purge:
            entries.clear()  # this list's entries only: each list is its own source of truth
        add, rem = [a.lower() for a in added], [r.lower() for r in removed]
        entries.update(add)
        entries.difference_update(rem)
        log.info("rtbl update from %s %s: +%d -%d (now %d entries)", source[0], source[1], len(add), len(rem),
                 len(entries))

    def blocks(self, bare: str, domain: str) -> bool:
        """Is this bare JID, or its domain or a parent of it, on a list?"""
        if not any(self._entries.values()):
            return False
        hashes = [sha256_hex(x) for x in [bare, *parents(domain)]]
        return any(h in entries for entries in self._entries.values() for h in hashes)

    def __len__(self) -> int:
        """Entries on all lists together (one blocked on two lists counts once)."""
        return len(set().union(*self._entries.values()))
