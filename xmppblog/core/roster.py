# SPDX-License-Identifier: AGPL-3.0-or-later
"""Roster and presence: blog JIDs as contacts of their followers (core layer, stdlib only).

Following by roster (RFC 6121 presence subscription to a blog JID) and
following by chat end in the same state: an IM subscription to the blog's
node, a mutual presence subscription so the component learns who is online,
and the owner's approval on protected blogs. A contact sees a blog JID's
presence (its status line is the latest post) only while the visibility rule
lets them read the blog: the status is computed per viewer when it is served,
and `PresenceGrants`, a projection of the domain events, withdraws the grant
(and says `unsubscribed`) in the transaction that takes read access away.
Presence stanzas to send are outbox events, durable like every notification.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from . import errors
from .addressing import Addressing
from .events import AccessChanged, AffiliationChanged, Cause, SubscriptionChanged
from .jid import bare
from .model import NS_MICROBLOG, Actor, Contact, Delivery, EventKind, Node, NodeRef, OutboxEvent, SubState
from .ports import EntryCodec
from .pubsub import PubsubService
from .transactions import Projections, Transactions, Tx
from .visibility import is_public, may_see

log = logging.getLogger(__name__)

AVAILABLE = "available"
#: the service JID's status line
SERVICE_STATUS = "Send 'help' to get started"
MAX_STATUS = 140


def presence(blog: str, to: str, ptype: str, status: str | None = None) -> OutboxEvent:
    return OutboxEvent(EventKind.PRESENCE, blog, "", (to,), payload=status, state=ptype)


def welcome(contact: Contact, status: str) -> tuple[Contact, list[OutboxEvent]]:
    """The contact may now see the blog: approve, show presence, ask for theirs."""
    events = [presence(contact.blog, contact.contact, "subscribed"),
              presence(contact.blog, contact.contact, AVAILABLE, status)]
    contact, ask = ask_presence(replace(contact, subscribed=True, pending_in=False), force=True)
    return contact, events + ask


def ask_presence(contact: Contact, force: bool = False) -> tuple[Contact, list[OutboxEvent]]:
    """Ask for the contact's presence, once: after a chat `follow` the blog JID appears in
    the follower's roster; after a first chat with the service, the component learns
    when that user is online. `force` asks again even if an earlier request got no answer."""
    if contact.sub_to or (contact.pending_out and not force):
        return contact, []
    return replace(contact, pending_out=True), [presence(contact.blog, contact.contact, "subscribe")]


def refuse(contact: Contact) -> tuple[Contact, list[OutboxEvent]]:
    """The contact may not (or no longer) see the blog's presence."""
    events = []
    if contact.pending_in or contact.subscribed:
        events.append(presence(contact.blog, contact.contact, "unsubscribed"))
    return replace(contact, subscribed=False, pending_in=False), events


def farewell(contact: Contact) -> tuple[Contact, list[OutboxEvent]]:
    """An unfollow by chat: remove the blog JID from the follower's roster both ways."""
    events = []
    if contact.sub_to:
        events.append(presence(contact.blog, contact.contact, "unsubscribe"))
    if contact.subscribed or contact.pending_in:
        events.append(presence(contact.blog, contact.contact, "unsubscribed"))
    return Contact(contact.blog, contact.contact), events


def status_of(node: Node | None, latest_text: str | None) -> str:
    if latest_text:
        return latest_text[:MAX_STATUS]
    return "microblog" if node is None else (node.config.title or "microblog")


async def save(tx: Tx, contact: Contact, events: list[OutboxEvent]) -> None:
    await tx.contacts.save(contact)
    for event in events:
        await tx.outbox.add(event)


class RosterService:
    """Presence use cases of blog JIDs and the service JID (one transaction each)."""

    def __init__(self, addr: Addressing, transactions: Transactions, pubsub: PubsubService,
                 codec: EntryCodec) -> None:
        self.addr = addr
        self._tx = transactions
        self._pubsub = pubsub
        self._codec = codec

    def _check_local(self, jid: str) -> None:
        if jid != self.addr.service_jid:
            self._pubsub.owner_of(jid)

    async def status_for(self, tx: Tx, blog: str, viewer: str) -> str:
        """A blog JID's status line as `viewer` may see it: the latest post only if they may read it."""
        if blog == self.addr.service_jid:
            return SERVICE_STATUS
        node = await tx.nodes.get(NodeRef(blog, NS_MICROBLOG))
        if node is None or not await may_see(tx, node, viewer):
            return status_of(node, None)
        latest = await tx.feed.latest(node.ref)
        return status_of(node, self._codec.summary(latest.payload) if latest else None)

    async def greet(self, user: str) -> None:
        """A local user talks to the service: ask for their presence once, so that
        tracked words, mentions and replies can reach them while they are online."""
        async with self._tx() as tx:
            contact, events = ask_presence(await tx.contacts.get(self.addr.service_jid, user))
            if events:
                await save(tx, contact, events)
                await tx.commit()

    async def contact_subscribe(self, blog: str, contact_jid: str) -> None:
        """A contact added a blog JID to their roster: follow, or ask the owner.
        Adding the service JID just shares presence both ways."""
        who = bare(contact_jid)
        async with self._tx() as tx:
            contact = await tx.contacts.get(blog, who)
            if blog == self.addr.service_jid:
                await save(tx, *welcome(contact, SERVICE_STATUS))
                await tx.commit()
                return
            ref = NodeRef(blog, NS_MICROBLOG)
            try:
                sub = await self._pubsub.subscribe_in(tx, ref, who, Delivery.IM, by_roster=True)
            except errors.BlogError as exc:
                log.info("roster follow refused: blog=%s contact=%s: %s", blog, who, exc.text)
                await save(tx, *refuse(replace(contact, pending_in=True)))
                await tx.commit()
                return
            contact = await tx.contacts.get(blog, who)
            if sub.state is SubState.SUBSCRIBED:
                await save(tx, *welcome(contact, await self.status_for(tx, blog, who)))
            else:
                await save(tx, replace(contact, pending_in=True), [])
            await tx.commit()
        log.info("roster follow: blog=%s contact=%s state=%s", blog, who, sub.state)

    async def contact_subscribed(self, blog: str, contact_jid: str, granted: bool) -> None:
        """The contact granted (or revoked) us their presence. An answer to nothing we asked
        for is ignored: it would make us probe a stranger after every reconnect."""
        self._check_local(blog)
        who = bare(contact_jid)
        async with self._tx() as tx:
            contact = await tx.contacts.get(blog, who)
            if not (contact.pending_out or contact.sub_to):
                log.debug("presence answer to no request ignored: blog=%s contact=%s", blog, who)
                return
            await tx.contacts.save(replace(contact, sub_to=granted, pending_out=False))
            if not granted and blog != self.addr.service_jid:
                await self._drop_follow(tx, blog, who)
            await tx.commit()

    async def contact_unsubscribe(self, blog: str, contact_jid: str) -> None:
        """The contact removed the blog JID from their roster: unfollow."""
        self._check_local(blog)
        who = bare(contact_jid)
        async with self._tx() as tx:
            contact = await tx.contacts.get(blog, who)
            known = contact.subscribed or contact.pending_in or contact.sub_to or contact.pending_out
            if known:
                await save(tx, replace(contact, subscribed=False, pending_in=False),
                           [presence(blog, who, "unsubscribed")])
            if blog != self.addr.service_jid:
                await self._drop_follow(tx, blog, who)
            await tx.commit()

    async def _drop_follow(self, tx: Tx, blog: str, who: str) -> None:
        if await self._pubsub.unsubscribe_all_in(tx, Actor(who), NodeRef(blog, NS_MICROBLOG), Delivery.IM):
            log.info("roster unfollow: blog=%s contact=%s", blog, who)

    async def withdraw_in(self, tx: Tx, blog: str, who: str) -> bool:
        """The owner takes back a contact's view of the blog JID's presence (`unsubscribed`).
        False: they had none."""
        contact = await tx.contacts.get(blog, who)
        if not (contact.subscribed or contact.pending_in):
            return False
        await save(tx, *refuse(contact))
        log.info("presence withdrawn by the owner: blog=%s contact=%s", blog, who)
        return True

    async def probe_answer(self, blog: str, contact_jid: str) -> str | None:
        """The status line to answer a probe with, or None if the contact may not see presence."""
        self._check_local(blog)
        who = bare(contact_jid)
        async with self._tx() as tx:
            if not await tx.contacts.has_presence(blog, who):
                return None
            return await self.status_for(tx, blog, who)

    async def presence_sources(self) -> list[tuple[str, str]]:
        """(blog, contact) pairs whose presence we receive: probed after a restart."""
        async with self._tx() as tx:
            return [(c.blog, c.contact) for c in await tx.contacts.with_presence_to()]

    async def presence_audience(self) -> list[tuple[str, str, str]]:
        """(blog, contact, status): who sees which blog JID's presence, re-announced after a restart;
        each status as that contact may see it."""
        out = []
        shared: dict[str, str] = {}
        async with self._tx() as tx:
            for c in await tx.contacts.with_presence_from():
                if c.blog not in shared:
                    node = await tx.nodes.get(NodeRef(c.blog, NS_MICROBLOG))
                    public = c.blog == self.addr.service_jid or node is None or is_public(node)
                    shared[c.blog] = await self.status_for(tx, c.blog, "") if public else ""
                status = shared[c.blog] or await self.status_for(tx, c.blog, c.contact)
                out.append((c.blog, c.contact, status))
        return out

    async def wants_presence_of(self, jid: str) -> bool:
        """Did we ask for this JID's presence (or hold it)? Only those are tracked as online."""
        async with self._tx() as tx:
            return await tx.contacts.wanted(bare(jid))


class PresenceGrants:
    """Presence grants follow read access (a projection of the domain events)."""

    def __init__(self, roster: RosterService) -> None:
        self.roster = roster

    def register(self, projections: Projections) -> None:
        projections.on(SubscriptionChanged, self.subscription)
        projections.on(AffiliationChanged, self.affiliation)
        projections.on(AccessChanged, self.access)

    @staticmethod
    def _blog(node: Node) -> bool:
        return not node.remote and not node.ref.is_comments and node.ref.node == NS_MICROBLOG

    async def subscription(self, tx: Tx, ev: SubscriptionChanged) -> None:
        if not self._blog(ev.node) or bare(ev.jid) != ev.jid:
            return
        if ev.cause is Cause.OWNER:
            # The owner's decision also answers a pending roster request, and an approved
            # IM follower gets the blog JID in their roster.
            contact = await tx.contacts.get(ev.node.ref.service, ev.jid)
            sub = await tx.subs.get(ev.node, ev.jid)
            if ev.after is SubState.SUBSCRIBED and contact.pending_in:
                await save(tx, *welcome(contact, await self.roster.status_for(tx, contact.blog, ev.jid)))
            elif ev.after is SubState.SUBSCRIBED and sub is not None and sub.delivery.im:
                await save(tx, *ask_presence(contact, force=True))
            elif ev.after is SubState.NONE:
                await save(tx, *refuse(contact))
            return
        if ev.after is SubState.NONE:
            await self._recheck(tx, ev.access, [ev.jid])

    async def affiliation(self, tx: Tx, ev: AffiliationChanged) -> None:
        if self._blog(ev.node):
            await self._recheck(tx, ev.node, [ev.jid])

    async def access(self, tx: Tx, ev: AccessChanged) -> None:
        if self._blog(ev.node):
            await self._recheck(tx, ev.node, None)

    async def _recheck(self, tx: Tx, access: Node, jids: list[str] | None) -> None:
        """Withdraw the presence grant of contacts (these, or all) who may no longer read the blog."""
        blog = access.ref.service
        contacts = ([await tx.contacts.get(blog, j) for j in jids] if jids is not None
                    else await tx.contacts.of_blog(blog))
        for contact in contacts:
            if contact.subscribed and not await may_see(tx, access, contact.contact):
                await save(tx, *refuse(contact))
                log.info("presence withdrawn: blog=%s contact=%s (no read access)", blog, contact.contact)
