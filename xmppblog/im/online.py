# SPDX-License-Identifier: AGPL-3.0-or-later
"""Who is online, from the presence the component receives (adapter layer).

Implements core.ports.OnlineView. It is rebuilt after a restart by probing
every contact whose presence we are subscribed to (im/roster.py).
"""

from __future__ import annotations


class OnlineTracker:
    def __init__(self) -> None:
        self._resources: dict[str, set[str]] = {}

    def available(self, bare: str, resource: str) -> None:
        self._resources.setdefault(bare, set()).add(resource)

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

    def clear(self) -> None:
        self._resources.clear()

    def __len__(self) -> int:
        return len(self._resources)
