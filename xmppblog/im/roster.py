# SPDX-License-Identifier: AGPL-3.0-or-later
"""Presence to and from blog JIDs: roster follows and online tracking (adapter layer).

subscribe -> follow (or pending on protected blogs); unsubscribe/unsubscribed
-> unfollow; subscribed -> we now receive the contact's presence; probe ->
the blog's presence if the contact may see it (never an 'unsubscribed' for
a probe: DESIGN.md pitfalls); available/unavailable -> who is online, for
contacts whose presence we asked for only. The rules are core/roster.py's.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

from ..core import errors
from ..core.following import FollowService
from ..core.jid import parse
from ..core.model import Actor
from ..core.roster import AVAILABLE, RosterService, presence
from ..pubsub.notify import render
from ..xmpp.component import BlogComponent, Request
from .online import OnlineTracker

log = logging.getLogger(__name__)


class RosterAdapter:
    def __init__(self, roster: RosterService, follows: FollowService, component: BlogComponent,
                 online: OnlineTracker) -> None:
        self.roster = roster
        self.follows = follows
        self.addr = roster.addr
        self.component = component
        self.online = online

    def register(self, component: BlogComponent) -> None:
        component.on_presence(self.on_presence)
        component.on_online(self._after_connect)

    def _send(self, frm: str, to: str, ptype: str | None = None, status: str | None = None) -> None:
        """An immediate presence (answers and probes), serialised like the outbox's (pubsub/notify.py)."""
        template = render(presence(frm, to, ptype or AVAILABLE, status))
        self.component.send_raw_stanza(template.address(to, "p" + secrets.token_hex(4)))

    async def on_presence(self, req: Request) -> None:
        ptype = req.xml.get("type", "available")
        sender = parse(req.sender)
        if ptype in ("available", "unavailable"):
            if ptype == "unavailable":
                self.online.unavailable(sender.bare, sender.resource)
            elif self.online.is_online(sender.bare) or await self.roster.wants_presence_of(sender.bare):
                self.online.available(sender.bare, sender.resource)
            return
        blog = req.to
        remote = self.addr.remote_of(blog)
        if remote is not None:
            await self._proxy(req, blog, remote, ptype, sender.bare)
            return
        if blog != self.addr.service_jid and self.addr.owner_of(blog) is None:
            return
        if ptype == "subscribe":
            await self.roster.contact_subscribe(blog, sender.bare)
        elif ptype == "subscribed":
            await self.roster.contact_subscribed(blog, sender.bare, True)
        elif ptype == "unsubscribed":
            await self.roster.contact_subscribed(blog, sender.bare, False)
        elif ptype == "unsubscribe":
            await self.roster.contact_unsubscribe(blog, sender.bare)
        elif ptype == "probe":
            status = await self.roster.probe_answer(blog, sender.bare)
            if status is not None:
                self._send(blog, req.sender, status=status)

    async def _proxy(self, req: Request, proxy: str, remote: str, ptype: str, contact: str) -> None:
        """Presence to a remote author's local address: adding it to the roster follows them."""
        if not self.addr.is_local_user(contact):
            return
        actor = Actor(contact)
        if ptype == "subscribe":
            try:
                followed = await self.follows.follow(actor, remote)
            except errors.BlogError as exc:
                log.info("roster follow of %s refused for %s: %s", remote, contact, exc.text)
                self._send(proxy, contact, "unsubscribed")
                return
            self._send(proxy, contact, "subscribed")
            self._send(proxy, contact, status=f"{followed.user}'s microblog (via {self.addr.service_jid})")
        elif ptype in ("unsubscribe", "unsubscribed"):
            with contextlib.suppress(errors.BlogError):  # not following: nothing to undo
                await self.follows.unfollow(actor, remote)
            if ptype == "unsubscribe":
                self._send(proxy, contact, "unsubscribed")
        elif ptype == "probe":
            self._send(proxy, req.sender, status=f"{remote}'s microblog")

    def _after_connect(self) -> None:
        # Online state is not kept across restarts: ask every contact again.
        self.online.clear()
        self.component.background(self.probe_all())

    async def probe_all(self) -> None:
        """After (re)connecting: show the blog JIDs online again and ask who is online."""
        try:
            audience = await self.roster.presence_audience()
            pairs = await self.roster.presence_sources()
        except Exception:
            log.exception("could not load the roster to announce presence")
            return
        for blog, contact, status in audience:
            self._send(blog, contact, status=status)
        for blog, contact in pairs:
            self._send(blog, contact, "probe")
        if pairs or audience:
            log.info("presence after connect: announced to %d, probed %d contact(s)", len(audience), len(pairs))
