# SPDX-License-Identifier: AGPL-3.0-or-later
"""Who is online, from the presence the component receives (adapter layer).

Implements core.ports.OnlineView. Only contacts whose presence we asked for are
tracked (the roster adapter checks), and memory is bounded: at most
MAX_RESOURCES resources per JID and MAX_JIDS JIDs, the least recently seen
forgotten first. It is rebuilt after a restart by probing every contact whose
presence we are subscribed to (im/roster.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

MAX_JIDS = 100_000
MAX_RESOURCES = 16


class OnlineTracker:
    def __init__(self, max_jids: int = MAX_JIDS, max_resources: int = MAX_RESOURCES) -> None:
        self._resources: OrderedDict[str, set[str]] = OrderedDict()
        self.max_jids = max_jids
        self.max_resources = max_resources

    def available(self, bare: str, resource: str) -> None:
        res = self._resources.pop(bare, set())
        if resource in res or len(res) < self.max_resources:
            res.add(resource)
        self._resources[bare] = res
        if len(self._resources) > self.max_jids:
            self._resources.popitem(last=False)

    def unavailable(self, bare: str, resource: str) -> None:
        """A resource went offline.

        An `unavailable` from the bare JID says nothing about resources we saw come
        online: Prosody sends one to every newly approved contact (our blog JIDs and
        the service JID each get their own) right before that user's available
        presences, so honouring it would mark a user offline for all blogs whenever
        they approve one more. Resources leave by their own full-JID unavailable.
        """
        res = self._resources.get(bare)
        if res is None or not resource:
            return
        res.discard(resource)
        if not res:
            del self._resources[bare]

    def is_online(self, bare: str) -> bool:
        return bare in self._resources

    async def online_among(self, bares: Sequence[str]) -> set[str]:
        """core.ports.OnlineView: those of `bares` seen online by this process."""
        return {b for b in bares if b in self._resources}

    def clear(self) -> None:
        self._resources.clear()

    def __len__(self) -> int:
        return len(self._resources)
