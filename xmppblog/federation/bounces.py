# SPDX-License-Identifier: AGPL-3.0-or-later
"""Bounced notifications from other servers -> retry or count a failure (adapter layer).

Outbox stanzas carry the id `ob<row>`; an error reply naming that id is a
bounce of that row (row ids are never reused, so never of a newer row). Its
condition decides (core/delivery.py). Bounces are never answered.
"""

from __future__ import annotations

import logging
import re

from ..core.delivery import Deliveries
from ..xmpp.component import BlogComponent, Request
from .iq import condition

log = logging.getLogger(__name__)

_ID = re.compile(r"^ob(\d{1,18})$")


class Bounces:
    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries

    def register(self, component: BlogComponent) -> None:
        component.on_message_error(self.on_error)

    async def on_error(self, req: Request) -> None:
        m = _ID.match(req.xml.get("id", ""))
        if not m:
            return
        outcome = await self.deliveries.bounced(int(m.group(1)), req.sender, condition(req.xml))
        log.debug("bounce: id=%s from=%s outcome=%s", req.xml.get("id"), req.sender, outcome)
