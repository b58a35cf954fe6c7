# SPDX-License-Identifier: AGPL-3.0-or-later
"""Presence to blog JIDs: subscriptions, probes, availability (adapter layer).

The component's roster is ours, in the database (DESIGN.md "Pitfalls"):
a contact's `subscribe` to a blog JID is recorded and answered here, so the
`presence` access model can ask whether a JID has a presence subscription.
On protected (authorize/whitelist) blogs the request stays pending.
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape, quoteattr

from ..core import errors
from ..core.model import NS_MICROBLOG, AccessModel, Actor, NodeRef
from ..core.service import BlogService
from ..xmpp.component import BlogComponent, Request

log = logging.getLogger(__name__)

PROTECTED = (AccessModel.AUTHORIZE, AccessModel.WHITELIST)


class PresenceAdapter:
    def __init__(self, service: BlogService, component: BlogComponent) -> None:
        self.service = service
        self.component = component

    def register(self, component: BlogComponent) -> None:
        component.on_presence(self.on_presence)

    def _send(self, frm: str, to: str, ptype: str | None = None, status: str | None = None) -> None:
        attrs = f" from={quoteattr(frm)} to={quoteattr(to)}"
        if ptype:
            attrs += f" type={quoteattr(ptype)}"
        inner = f"<status>{escape(status)}</status>" if status else ""
        self.component.send_raw_stanza(f"<presence{attrs}>{inner}</presence>")

    async def _access(self, blog: str) -> AccessModel:
        try:
            node = await self.service.visible_node(Actor.SYSTEM, NodeRef(blog, NS_MICROBLOG))
        except errors.NodeNotFound:
            return AccessModel.OPEN
        return node.config.access_model

    async def on_presence(self, req: Request) -> None:
        ptype = req.xml.get("type", "available")
        blog = req.to
        if self.service.addr.owner_of(blog) is None:
            return
        contact = req.actor.jid
        if ptype == "subscribe":
            if await self._access(blog) in PROTECTED:
                log.info("presence subscription pending: blog=%s contact=%s", blog, contact)
                return
            await self.service.set_presence_subscription(blog, contact, True)
            self._send(blog, contact, "subscribed")
            self._send(blog, contact, status="xmppblog microblog")
        elif ptype in ("unsubscribe", "unsubscribed"):
            await self.service.set_presence_subscription(blog, contact, False)
            if ptype == "unsubscribe":
                self._send(blog, contact, "unsubscribed")
        elif ptype == "probe":
            # Unknown contacts get no answer: never reveal presence, never
            # send 'unsubscribed' that could cancel a follow (DESIGN.md pitfalls).
            if await self.service.has_presence_subscription(blog, contact):
                self._send(blog, req.sender, status="xmppblog microblog")
