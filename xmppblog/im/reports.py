# SPDX-License-Identifier: AGPL-3.0-or-later
"""Blocking with an abuse report (XEP-0191 + XEP-0377) sent to the service JID (adapter layer).

`<block><item jid='…'><report reason='urn:xmpp:reporting:spam'>…` blocks the JID
for the sender (like the `block` chat command) and files a report for admins.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..core import errors
from ..core.moderation import Moderation
from ..core.social import SocialService
from ..xmpp.component import BlogComponent, Request

NS_BLOCKING = "urn:xmpp:blocking"
NS_REPORTING = "urn:xmpp:reporting:1"
B = f"{{{NS_BLOCKING}}}"
R = f"{{{NS_REPORTING}}}"


class BlockingAdapter:
    def __init__(self, social: SocialService, moderation: Moderation) -> None:
        self.social = social
        self.moderation = moderation

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_BLOCKING, "set", self.set_block)

    async def set_block(self, req: Request, el: ET.Element) -> None:
        if req.to != self.social.addr.service_jid:
            raise errors.NodeNotFound("send blocks and reports to the service JID")
        if el.tag not in (B + "block", B + "unblock"):
            raise errors.BadRequest("expected <block/> or <unblock/>")
        items = el.findall(B + "item")
        if not items or any(not i.get("jid") for i in items):
            raise errors.BadRequest("each <item/> needs a jid")
        for item in items:
            jid = item.get("jid", "")
            if el.tag == B + "unblock":
                await self.social.unblock(req.actor, jid)
                continue
            await self.social.block(req.actor, jid)
            report = item.find(R + "report")
            if report is not None:
                text = report.find(R + "text")
                await self.moderation.report(req.actor, jid, report.get("reason", ""),
                                             (text.text or "") if text is not None else "")
        return None
