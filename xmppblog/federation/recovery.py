# SPDX-License-Identifier: AGPL-3.0-or-later
"""Noticing that a server we could not reach is back (adapter layer).

A notification that bounced because its server was down is retried with a
backoff that doubles up to an hour (core/delivery.py), so after a long outage
the backlog would trickle out over the next minutes at the pace of those
retries. Instead, every `every` seconds each server with notifications waiting
for a retry is pinged (XEP-0199, from our return JID); one that answers gets
its waiting notifications sent at once. In a cluster one worker does it.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable

from ..core import errors
from ..core.delivery import Deliveries
from .iq import Requests

log = logging.getLogger(__name__)

#: servers pinged per round (the rest wait for the next round or their own retry)
MAX_PINGS = 50


class ServerRecovery:
    def __init__(self, requests: Requests, deliveries: Deliveries, every: float = 15.0,
                 runs: Callable[[], bool] = lambda: True) -> None:
        self.requests = requests
        self.deliveries = deliveries
        self.every = every
        #: whether this process is the one that pings (a cluster's worker holding the job)
        self.runs = runs

    async def run(self) -> None:
        """Check every `every` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.every)
            if not self.runs():
                continue
            try:
                await self.check()
            except errors.BlogError as exc:
                log.warning("delivery: could not look for servers that are back: %s", exc.text)

    async def check(self) -> int:
        """Ping the servers notifications wait for; those that answer get them now. Returns how
        many notifications became due."""
        servers = await self.deliveries.retrying_servers(MAX_PINGS)
        answered = await asyncio.gather(*(self._answers(s) for s in servers))
        due = 0
        for server, up in zip(servers, answered, strict=True):
            if up:
                due += await self.deliveries.server_back(server)
        return due

    async def _answers(self, server: str) -> bool:
        """A pong from `server` (an error answer may come from a server on its behalf)."""
        try:
            await self.requests.get(server, ET.Element("{urn:xmpp:ping}ping"))
        except errors.RemoteUnavailable:
            return False
        return True
