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
        self._entries: set[str] = set()

    def is_source(self, service: str, node: str) -> bool:
        return (service, node) in self.sources

    def apply(self, source: tuple[str, str], added: Iterable[str] = (), removed: Iterable[str] = (),
              purge: bool = False) -> None:
        """A list's new state: items added, retracted, or (purge) all gone."""
        if source not in self.sources:
            return
        if purge:
            self._entries.clear()
        add, rem = [a.lower() for a in added], [r.lower() for r in removed]
        self._entries.update(add)
        self._entries.difference_update(rem)
        log.info("rtbl update from %s %s: +%d -%d (now %d entries)", source[0], source[1], len(add), len(rem),
                 len(self._entries))

    def blocks(self, bare: str, domain: str) -> bool:
        """Is this bare JID, or its domain or a parent of it, on a list?"""
        if not self._entries:
            return False
        return any(sha256_hex(x) in self._entries for x in [bare, *parents(domain)])

    def __len__(self) -> int:
        return len(self._entries)
