# SPDX-License-Identifier: AGPL-3.0-or-later
"""SocialService: following, roster events, timelines, tracking, blocks (core layer).

What plain IM users do (chat commands, roster changes) expressed on top of
BlogService. Refusals are domain errors whose text is written for a person
reading it in a chat window.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, replace

from . import errors, roster
from .addressing import Addressing
from .jid import bare, parse
from .model import (
    NS_MICROBLOG,
    AccessModel,
    Actor,
    Affiliation,
    Delivery,
    Item,
    NodeRef,
    PageRequest,
    SubState,
)
from .ports import UnitOfWorkFactory
from .search import parse_query
from .service import BlogService

log = logging.getLogger(__name__)

_TRACK_WORD = re.compile(r"^[\w][\w'-]{0,63}$", re.UNICODE)
MAX_TIMELINE = 50
MAX_TRACKS = 50


@dataclass(frozen=True, slots=True)
class Followed:
    user: str
    blog: str
    state: SubState
    already: bool


@dataclass(frozen=True, slots=True)
class Whois:
    user: str
    blog: str
    posts: int | None  # None: more than the store counts cheaply (thousands)
    followers: int
    access: AccessModel | None
    latest: Item | None


@dataclass(frozen=True, slots=True)
class FoundPost:
    ref: NodeRef
    item: Item


class SocialService:
    def __init__(self, blogs: BlogService, uow: UnitOfWorkFactory) -> None:
        self.blogs = blogs
        self._uow = uow
        self.addr: Addressing = blogs.addr

    # ------------------------------------------------------------ addressing

    def resolve_user(self, target: str) -> tuple[str, str]:
        """(user JID, blog JID) of a user named by user JID, blog JID or xmpp: URI.

        Raises:
            InvalidJid: not a JID. Unsupported: a user of another server (federation).
        """
        raw = target.strip()
        if raw.startswith("xmpp:"):
            raw = raw[5:].split("?", 1)[0]
        j = parse(raw)
        user = self.addr.owner_of(j.bare)
        if user is not None:
            return user, j.bare
        blog = self.addr.blog_of(j.bare)
        if blog is not None:
            return j.bare, blog
        raise errors.Unsupported(
            "federation", f"{j.bare} is not on this server; following users of other servers "
            "is not available yet")

    def _own_ref(self, actor: Actor) -> NodeRef:
        blog = self.addr.blog_of(actor.jid)
        if blog is None:
            raise errors.Forbidden(f"only users of {self.addr.users_domain} have a blog here")
        return NodeRef(blog, NS_MICROBLOG)

    # ------------------------------------------------------------ follow

    async def follow(self, actor: Actor, target: str) -> Followed:
        """Follow a local user by chat: an IM subscription (pending on protected blogs).

        Raises:
            InvalidJid, Unsupported (remote), BadRequest (yourself), Forbidden (blocked),
            and the subscribe refusals of BlogService.
        """
        user, blog = self.resolve_user(target)
        if user == actor.jid:
            raise errors.BadRequest("you can't follow yourself; your own posts are in `timeline` anyway")
        async with self._uow() as uow:
            if user in await uow.im.blockers_of(actor.jid, [user]):
                raise errors.Forbidden(f"{user} does not accept followers from you")
        ref = NodeRef(blog, NS_MICROBLOG)
        already = bool(await self._subscription_jids(actor, ref))
        try:
            sub = await self.blogs.subscribe(actor, ref, actor.jid, Delivery.IM)
        except errors.ClosedNode:
            raise errors.ClosedNode(f"{user}'s blog is only for people {user} listed") from None
        async with self._uow() as uow:
            if sub.state is SubState.SUBSCRIBED:
                contact, events = roster.ask_presence(await uow.contacts.get(blog, actor.jid), force=True)
                await uow.contacts.save(contact)
                for event in events:
                    await uow.outbox.add(event)
            await self.blogs.commit(uow)
        log.info("follow: %s -> %s state=%s", actor.jid, user, sub.state)
        return Followed(user, blog, sub.state, already)

    async def unfollow(self, actor: Actor, target: str) -> str:
        """Stop following (chat). Returns the user JID.

        Raises:
            InvalidJid, Unsupported, NotSubscribed.
        """
        user, blog = self.resolve_user(target)
        ref = NodeRef(blog, NS_MICROBLOG)
        removed = False
        for jid in await self._subscription_jids(actor, ref):
            with contextlib.suppress(errors.NotSubscribed, errors.NodeNotFound):  # already gone
                await self.blogs.unsubscribe(actor, ref, jid)
                removed = True
        async with self._uow() as uow:
            contact, events = roster.farewell(await uow.contacts.get(blog, actor.jid))
            await uow.contacts.save(contact)
            for event in events:
                await uow.outbox.add(event)
            await self.blogs.commit(uow)
        if not removed and not events:
            raise errors.NotSubscribed(f"you are not following {user}")
        return user

    async def _subscription_jids(self, actor: Actor, ref: NodeRef) -> list[str]:
        async with self._uow() as uow:
            subs = await uow.subs.following(actor.jid)
        return [s.jid for s in subs if s.ref == ref]

    async def following(self, actor: Actor) -> list[tuple[str, SubState]]:
        async with self._uow() as uow:
            subs = await uow.subs.following(actor.jid)
        out: dict[str, SubState] = {}
        async with self._uow() as uow:
            for s in subs:
                if s.ref.node != NS_MICROBLOG:
                    continue
                owner = self.addr.owner_of(s.ref.service)
                if owner is None:  # a remote blog cached here
                    node = await uow.nodes.get(s.ref)
                    owner = node.owner if node is not None and node.remote else None
                if owner:
                    out[owner] = s.state
        return sorted(out.items())

    async def followers(self, actor: Actor) -> list[tuple[str, SubState]]:
        ref = self._own_ref(actor)
        try:
            subs = await self.blogs.get_subscriptions(actor, ref)
        except errors.NodeNotFound:
            return []
        return sorted({bare(s.jid): s.state for s in subs}.items())

    # ------------------------------------------------------------ roster events

    async def greet(self, user: str) -> None:
        """A local user talks to the service: ask for their presence once, so that
        tracked words, mentions and replies can reach them while they are online."""
        async with self._uow() as uow:
            contact, events = roster.ask_presence(await uow.contacts.get(self.addr.service_jid, user))
            if events:
                await uow.contacts.save(contact)
                for event in events:
                    await uow.outbox.add(event)
                await self.blogs.commit(uow)

    def _check_local(self, jid: str) -> None:
        if jid != self.addr.service_jid:
            self.blogs.owner_of(jid)

    async def contact_subscribe(self, blog: str, contact_jid: str) -> None:
        """A contact added a blog JID to their roster: follow, or ask the owner.
        Adding the service JID just shares presence both ways."""
        who = bare(contact_jid)
        if blog == self.addr.service_jid:
            async with self._uow() as uow:
                contact, events = roster.welcome(await uow.contacts.get(blog, who), "Send 'help' to get started")
                await uow.contacts.save(contact)
                for event in events:
                    await uow.outbox.add(event)
                await self.blogs.commit(uow)
            return
        owner = self.blogs.owner_of(blog)
        ref = NodeRef(blog, NS_MICROBLOG)
        async with self._uow() as uow:
            if owner in await uow.im.blockers_of(who, [owner]):
                log.info("roster follow ignored (blocked): blog=%s contact=%s", blog, who)
                return
            node = await uow.nodes.get(ref)
            if node is not None and node.config.access_model is AccessModel.PRESENCE:
                # On a `presence` blog the presence subscription is what grants access.
                await uow.contacts.save(replace(await uow.contacts.get(blog, who), subscribed=True))
                await uow.commit()
        try:
            sub = await self.blogs.subscribe(Actor(who), ref, who, Delivery.IM)
        except errors.BlogError as exc:
            log.info("roster follow refused: blog=%s contact=%s: %s", blog, who, exc.text)
            async with self._uow() as uow:
                await uow.outbox.add(roster.presence(blog, who, "unsubscribed"))
                await self.blogs.commit(uow)
            return
        async with self._uow() as uow:
            contact = await uow.contacts.get(blog, who)
            if sub.state is SubState.SUBSCRIBED:
                contact, events = roster.welcome(contact, await self.blogs.status(uow, blog))
            else:
                contact, events = replace(contact, pending_in=True), []
            await uow.contacts.save(contact)
            for event in events:
                await uow.outbox.add(event)
            await self.blogs.commit(uow)
        log.info("roster follow: blog=%s contact=%s state=%s", blog, who, sub.state)

    async def contact_subscribed(self, blog: str, contact_jid: str, granted: bool) -> None:
        """The contact granted (or revoked) us their presence."""
        self._check_local(blog)
        who = bare(contact_jid)
        async with self._uow() as uow:
            contact = await uow.contacts.get(blog, who)
            await uow.contacts.save(replace(contact, sub_to=granted, pending_out=False))
            await uow.commit()
        if not granted and blog != self.addr.service_jid:
            await self._drop_follow(blog, who)

    async def contact_unsubscribe(self, blog: str, contact_jid: str) -> None:
        """The contact removed the blog JID from their roster: unfollow."""
        self._check_local(blog)
        who = bare(contact_jid)
        async with self._uow() as uow:
            contact = await uow.contacts.get(blog, who)
            await uow.contacts.save(replace(contact, subscribed=False, pending_in=False))
            await uow.outbox.add(roster.presence(blog, who, "unsubscribed"))
            await self.blogs.commit(uow)
        if blog != self.addr.service_jid:
            await self._drop_follow(blog, who)

    async def _drop_follow(self, blog: str, who: str) -> None:
        ref = NodeRef(blog, NS_MICROBLOG)
        for jid in await self._subscription_jids(Actor(who), ref):
            with contextlib.suppress(errors.NotSubscribed, errors.NodeNotFound):  # already gone
                await self.blogs.unsubscribe(Actor(who), ref, jid)
                log.info("roster unfollow: blog=%s contact=%s", blog, who)

    async def probe_answer(self, blog: str, contact_jid: str) -> str | None:
        """The status line to answer a probe with, or None if the contact may not see presence."""
        self._check_local(blog)
        async with self._uow() as uow:
            if not await uow.contacts.has_presence(blog, bare(contact_jid)):
                return None
            if blog == self.addr.service_jid:
                return "Send 'help' to get started"
            return await self.blogs.status(uow, blog)

    async def presence_sources(self) -> list[tuple[str, str]]:
        """(blog, contact) pairs whose presence we receive: probed after a restart."""
        async with self._uow() as uow:
            return [(c.blog, c.contact) for c in await uow.contacts.with_presence_to()]

    async def presence_audience(self) -> list[tuple[str, str, str]]:
        """(blog, contact, status): who sees which blog JID's presence, re-announced after a restart."""
        out = []
        statuses: dict[str, str] = {}
        async with self._uow() as uow:
            for c in await uow.contacts.with_presence_from():
                if c.blog not in statuses:
                    statuses[c.blog] = ("Send 'help' to get started" if c.blog == self.addr.service_jid
                                        else await self.blogs.status(uow, c.blog))
                out.append((c.blog, c.contact, statuses[c.blog]))
        return out

    # ------------------------------------------------------------ owner answers

    async def pending_requests(self, actor: Actor) -> list[str]:
        ref = self._own_ref(actor)
        try:
            pending = await self.blogs.pending(actor, ref.service)
        except errors.NodeNotFound:
            return []
        return sorted({bare(j) for j in pending.get(NS_MICROBLOG, [])})

    async def answer(self, actor: Actor, target: str, allow: bool) -> bool:
        """approve / deny a follow request on your own blog. False: there was none."""
        ref = self._own_ref(actor)
        who = bare(target.removeprefix("xmpp:"))
        changed = False
        for jid in [j for j in await self._pending_jids(actor, ref) if bare(j) == who]:
            changed |= await self.blogs.authorize(actor, ref, jid, allow)
        if allow and changed:
            node = await self.blogs.visible_node(actor, ref)
            if node.config.access_model is AccessModel.WHITELIST:
                await self.blogs.set_affiliations(actor, ref, [(who, Affiliation.MEMBER.value)])
        return changed

    async def _pending_jids(self, actor: Actor, ref: NodeRef) -> list[str]:
        try:
            return (await self.blogs.pending(actor, ref.service)).get(NS_MICROBLOG, [])
        except errors.NodeNotFound:
            return []

    async def protect(self, actor: Actor, on: bool) -> AccessModel:
        ref = self._own_ref(actor)
        model = AccessModel.AUTHORIZE if on else AccessModel.OPEN
        try:
            await self.blogs.configure(actor, ref, {"access_model": model})
        except errors.NodeNotFound:
            await self.blogs.create(actor, ref, {"access_model": model})
        return model

    # ------------------------------------------------------------ preferences

    async def set_paused(self, actor: Actor, paused: bool) -> None:
        async with self._uow() as uow:
            await uow.im.set_paused(actor.jid, paused)
            await uow.commit()

    @staticmethod
    def track_word(word: str) -> str:
        w = word.strip().lstrip("#").casefold()
        if not _TRACK_WORD.match(w):
            raise errors.BadRequest("track one word (letters, digits, - or '), up to 64 characters")
        return w

    async def track(self, actor: Actor, word: str) -> tuple[str, bool]:
        w = self.track_word(word)
        async with self._uow() as uow:
            if len(await uow.im.tracked(actor.jid)) >= MAX_TRACKS:
                raise errors.BadRequest(f"you can track at most {MAX_TRACKS} words; untrack one first")
            added = await uow.im.track(actor.jid, w)
            await uow.commit()
        return w, added

    async def untrack(self, actor: Actor, word: str) -> tuple[str, bool]:
        w = self.track_word(word)
        async with self._uow() as uow:
            removed = await uow.im.untrack(actor.jid, w)
            await uow.commit()
        return w, removed

    async def tracking(self, actor: Actor) -> list[str]:
        async with self._uow() as uow:
            return list(await uow.im.tracked(actor.jid))

    async def block(self, actor: Actor, target: str) -> tuple[str, bool]:
        who = bare(target.removeprefix("xmpp:"))
        owner = self.addr.owner_of(who)
        who = owner or who
        if who == actor.jid:
            raise errors.BadRequest("you can't block yourself")
        async with self._uow() as uow:
            added = await uow.im.block(actor.jid, who)
            await uow.commit()
        blog = self.addr.blog_of(who)
        if blog:
            await self._drop_follow(blog, actor.jid)
        log.info("block: %s blocks %s", actor.jid, who)
        return who, added

    async def unblock(self, actor: Actor, target: str) -> tuple[str, bool]:
        who = bare(target.removeprefix("xmpp:"))
        who = self.addr.owner_of(who) or who
        async with self._uow() as uow:
            removed = await uow.im.unblock(actor.jid, who)
            await uow.commit()
        return who, removed

    async def blocked(self, actor: Actor) -> list[str]:
        async with self._uow() as uow:
            return list(await uow.im.blocked(actor.jid))

    # ------------------------------------------------------------ reading

    async def timeline(self, actor: Actor, n: int) -> list[FoundPost]:
        """The last `n` posts of everyone `actor` follows (and their own), newest first."""
        n = max(1, min(n, MAX_TIMELINE))
        async with self._uow() as uow:
            rows = list(await uow.feed.timeline(actor.jid, n * 2))
            own = self.addr.blog_of(actor.jid)
            if own:
                page = await uow.nodes.get(NodeRef(own, NS_MICROBLOG))
                if page is not None:
                    rows += [(page.ref, i) for i in (await uow.items.page(page, PageRequest(max=n), n)).items]
            blocked = set(await uow.im.blocked(actor.jid))
        seen: set[tuple[NodeRef, str]] = set()
        out = []
        for ref, item in sorted(rows, key=lambda r: r[1].updated, reverse=True):
            if ((ref, item.item_id) in seen or bare(item.publisher) in blocked or ref.is_comments
                    or ref.service == self.addr.service_jid):
                continue
            seen.add((ref, item.item_id))
            out.append(FoundPost(ref, item))
        return out[:n]

    async def find_post(self, actor: Actor, short: str) -> FoundPost:
        """The post whose id starts with `short`, among those `actor` may read.

        Raises:
            ItemNotFound: none. BadRequest: ambiguous.
        """
        s = short.strip().lstrip("#")
        if len(s) < 3 or len(s) > 256:
            raise errors.ItemNotFound(f"No such post: {short}")
        async with self._uow() as uow:
            candidates = list(await uow.feed.find(s, 20))
        visible = []
        for ref, item in candidates:
            if ref.service == self.addr.service_jid:
                continue  # public timeline copies: the original is among the candidates
            if self.addr.owner_of(ref.service) is not None:
                try:
                    await self.blogs.get_items(actor, ref, [item.item_id])
                except errors.BlogError:
                    continue
            # else: a cached remote post; only public nodes are ever cached (core/federation.py)
            if item.item_id == s:
                return FoundPost(ref, item)
            visible.append(FoundPost(ref, item))
        if not visible:
            raise errors.ItemNotFound(f"No such post: {short}")
        if len(visible) > 1:
            raise errors.BadRequest(f"{short} matches {len(visible)} posts; give more of its id")
        return visible[0]

    async def search(self, actor: Actor, query: str, limit: int = 10, offset: int = 0,
                     by_relevance: bool = False) -> tuple[list[FoundPost], int]:
        """Public posts (local and federated) matching `query`, newest first or by relevance.

        Raises:
            BadRequest, InvalidJid: a malformed query.
        """
        q = parse_query(query, by_relevance)
        limit = max(1, min(limit, 50))
        async with self._uow() as uow:
            hits, total = await uow.search.search(q, limit, max(0, offset))
            out = []
            for ref, item_id in hits:
                node = await uow.nodes.get(ref)
                # T6 at serve time: only what is public right now
                if node is None or (not node.remote and node.config.access_model is not AccessModel.OPEN):
                    continue
                item = await uow.items.get(node, item_id)
                if item is not None:
                    out.append(FoundPost(ref, item))
        return out, total

    async def whois(self, actor: Actor, target: str) -> Whois:
        user, blog = self.resolve_user(target)
        ref = NodeRef(blog, NS_MICROBLOG)
        async with self._uow() as uow:
            node = await uow.nodes.get(ref)
            followers = len(await uow.subs.for_node(node, SubState.SUBSCRIBED)) if node else 0
        latest: Item | None = None
        posts: int | None = 0
        with contextlib.suppress(errors.BlogError):  # a protected blog: its counts stay private
            page = await self.blogs.get_items(actor, ref, page=PageRequest(max=1))
            latest = page.items[0] if page.items else None
            posts = page.count
        return Whois(user, blog, posts, followers, node.config.access_model if node else None, latest)

