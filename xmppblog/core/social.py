# SPDX-License-Identifier: AGPL-3.0-or-later
"""SocialService: reading, preferences and owner answers for IM users (core layer).

Personal timelines, whois, tracked words, pausing, blocks, and the owner's
side of following (requests, approve, deny, protect, followers). Every list
of posts passes the visibility rule when it is served. Refusals are domain
errors whose text is written for a person reading it in a chat window.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from . import errors
from .addressing import Addressing
from .following import FollowService
from .moderation import Moderation
from .jid import bare
from .model import NS_MICROBLOG, AccessModel, Actor, Affiliation, FoundPost, Item, Node, NodeRef, PageRequest, SubState
from .pubsub import PubsubService
from .roster import RosterService
from .text import normal
from .transactions import Transactions, Tx
from .visibility import may_read, may_read_ref, viewer_for

log = logging.getLogger(__name__)

_TRACK_WORD = re.compile(r"^[\w][\w'-]{0,63}$", re.UNICODE)
MAX_TIMELINE = 50
MAX_TRACKS = 50


@dataclass(frozen=True, slots=True)
class Report:
    """A XEP-0377 report carried by a block."""

    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Whois:
    user: str
    blog: str
    posts: int | None       # None: more than the store counts cheaply, or private
    followers: int | None   # None: private (the reader may not read the blog)
    access: AccessModel | None
    latest: Item | None


class SocialService:
    def __init__(self, addr: Addressing, transactions: Transactions, pubsub: PubsubService,
                 follows: FollowService, moderation: Moderation, roster: RosterService) -> None:
        self.addr = addr
        self._tx = transactions
        self._pubsub = pubsub
        self._follows = follows
        self._moderation = moderation
        self._roster = roster

    def _own_ref(self, actor: Actor) -> NodeRef:
        return self._pubsub.nodes.own_blog(actor)

    # ------------------------------------------------------------ reading

    async def timeline(self, actor: Actor, n: int) -> list[FoundPost]:
        """The last `n` posts of everyone `actor` follows (and their own), newest first."""
        n = max(1, min(n, MAX_TIMELINE))
        async with self._tx() as tx:
            rows = list(await tx.feed.timeline(actor.jid, n * 2))
            own = self.addr.blog_of(actor.jid)
            if own:
                page = await tx.nodes.get(NodeRef(own, NS_MICROBLOG))
                if page is not None:
                    rows += [(page.ref, i) for i in (await tx.items.page(page, PageRequest(max=n), n)).items]
            blocked = set(await tx.im.blocked(actor.jid))
            seen: set[tuple[NodeRef, str]] = set()
            readable: dict[NodeRef, bool] = {}
            out = []
            for ref, item in sorted(rows, key=lambda r: r[1].updated, reverse=True):
                if ((ref, item.item_id) in seen or bare(item.publisher) in blocked or ref.of_post
                        or ref.service == self.addr.service_jid):
                    continue
                if not await may_read_ref(tx, actor, ref, readable):
                    continue
                seen.add((ref, item.item_id))
                out.append(FoundPost(ref, item))
                if len(out) == n:
                    break
        return out

    async def whois(self, actor: Actor, target: str) -> Whois:
        """A local user's blog: its counts only for those who may read it.

        Raises:
            InvalidJid, NoMicroblog (not a user of this server).
        """
        local = self._follows.local_user(target)
        if local is None:
            raise errors.NoMicroblog("whois knows the users of this server; follow others to read them")
        user, blog = local
        ref = NodeRef(blog, NS_MICROBLOG)
        latest: Item | None = None
        posts: int | None = 0
        followers: int | None = 0
        async with self._tx() as tx:
            node = await tx.nodes.get(ref)
            visible = node is not None and may_read(node, await viewer_for(tx, node, actor))
            if node is not None and visible:
                followers = await tx.subs.count(node, SubState.SUBSCRIBED)
                page = await tx.items.page(node, PageRequest(max=1), 1)
                latest = page.items[0] if page.items else None
                posts = page.count
            elif node is not None:
                posts = followers = None
        return Whois(user, blog, posts, followers, node.config.access_model if node else None, latest)

    # ------------------------------------------------------------ owner answers

    async def followers(self, actor: Actor) -> list[tuple[str, SubState]]:
        ref = self._own_ref(actor)
        try:
            subs = await self._pubsub.get_subscriptions(actor, ref)
        except errors.NodeNotFound:
            return []
        return sorted({bare(s.jid): s.state for s in subs}.items())

    async def pending_requests(self, actor: Actor) -> list[str]:
        ref = self._own_ref(actor)
        try:
            pending = await self._pubsub.pending(actor, ref.service)
        except errors.NodeNotFound:
            return []
        return sorted({bare(j) for j in pending.get(NS_MICROBLOG, [])})

    async def answer(self, actor: Actor, target: str, allow: bool) -> bool:
        """approve / deny a follow request on your own blog, in one transaction. False: there was none."""
        ref = self._own_ref(actor)
        who = bare(target.removeprefix("xmpp:"))
        async with self._tx() as tx:
            pending = (await self._pubsub.pending_in(tx, actor, ref.service)).get(NS_MICROBLOG, [])
            changed = False
            for jid in [j for j in pending if bare(j) == who]:
                changed |= await self._pubsub.authorize_in(tx, actor, ref, jid, allow)
            node = await tx.nodes.get(ref)
            if allow and changed and node is not None and node.config.access_model is AccessModel.WHITELIST:
                await self._pubsub.set_affiliations_in(tx, actor, ref, [(who, Affiliation.MEMBER)])
            await tx.commit()
        return changed

    async def remove_follower(self, actor: Actor, target: str) -> tuple[str, bool]:
        """The owner removes someone from their blog's readers and roster (they may ask again,
        unless blocked). Returns (bare JID, whether they held anything)."""
        who = self._blockee(actor, target)
        async with self._tx() as tx:
            removed = await self.remove_follower_in(tx, actor, who)
            await tx.commit()
        return who, removed

    async def remove_follower_in(self, tx: Tx, actor: Actor, who: str) -> bool:
        ref = self._own_ref(actor)
        removed = await self._pubsub.remove_subscriber_in(tx, actor, ref, who)
        removed |= await self._roster.withdraw_in(tx, ref.service, who)
        if removed:
            log.info("follower removed: %s removes %s", actor.jid, who)
        return removed

    async def protect(self, actor: Actor, on: bool) -> AccessModel:
        ref = self._own_ref(actor)
        model = AccessModel.AUTHORIZE if on else AccessModel.OPEN
        async with self._tx() as tx:
            await self._pubsub.configure_in(tx, actor, ref, {"access_model": model}, create=True)
            await tx.commit()
        return model

    async def discoverable(self, actor: Actor, on: bool | None = None) -> bool:
        """Set (`on`) or read (None) whether the actor's public posts may enter other servers'
        indexes (core/discovery.py); returns the choice in force. Turning it off withdraws
        every earlier post from the firehose in the same transaction (core/firehose.py)."""
        ref = self._own_ref(actor)
        async with self._tx() as tx:
            if on is None:
                node = await tx.nodes.get(ref)
                return self._pubsub.discovery.consents(node) if node is not None \
                    else self._pubsub.discovery.default
            config = await self._pubsub.configure_in(tx, actor, ref, {"discoverable": on}, create=True)
            await tx.commit()
        log.info("discoverable: %s turns it %s", actor.jid, "on" if config.discoverable else "off")
        return bool(config.discoverable)

    # ------------------------------------------------------------ preferences

    async def set_paused(self, actor: Actor, paused: bool) -> None:
        async with self._tx() as tx:
            await tx.im.set_paused(actor.jid, paused)
            await tx.commit()

    @staticmethod
    def track_word(word: str) -> str:
        w = normal(word.strip().lstrip("#"))
        if not _TRACK_WORD.match(w):
            raise errors.BadRequest("track one word (letters, digits, - or '), up to 64 characters")
        return w

    async def track(self, actor: Actor, word: str) -> tuple[str, bool]:
        w = self.track_word(word)
        async with self._tx() as tx:
            if len(await tx.im.tracked(actor.jid)) >= MAX_TRACKS:
                raise errors.BadRequest(f"you can track at most {MAX_TRACKS} words; untrack one first")
            added = await tx.im.track(actor.jid, w)
            await tx.commit()
        return w, added

    async def untrack(self, actor: Actor, word: str) -> tuple[str, bool]:
        w = self.track_word(word)
        async with self._tx() as tx:
            removed = await tx.im.untrack(actor.jid, w)
            await tx.commit()
        return w, removed

    async def tracking(self, actor: Actor) -> list[str]:
        async with self._tx() as tx:
            return list(await tx.im.tracked(actor.jid))

    def _may_block(self, actor: Actor) -> None:
        if not self.addr.is_local_user(actor.jid):
            raise errors.Forbidden(f"blocks and reports here are for users of {self.addr.users_domain}")

    def _blockee(self, actor: Actor, target: str) -> str:
        who = bare(target.removeprefix("xmpp:"))
        who = self.addr.owner_of(who) or who  # a blog JID stands for its owner
        if who == actor.jid:
            raise errors.BadRequest("you can't block yourself")
        return who

    async def block(self, actor: Actor, target: str) -> tuple[str, bool]:
        """Block a JID (a user JID or a blog JID standing for one): nothing from them reaches the actor,
        the actor stops following them and, on the actor's own blog, they stop following the actor."""
        self._may_block(actor)
        async with self._tx() as tx:
            who, added = await self.block_in(tx, actor, target)
            await tx.commit()
        return who, added

    async def block_in(self, tx: Tx, actor: Actor, target: str) -> tuple[str, bool]:
        who = self._blockee(actor, target)
        added = await tx.im.block(actor.jid, who)
        blog = self.addr.blog_of(who)
        if blog:
            await self._pubsub.unsubscribe_all_in(tx, actor, NodeRef(blog, NS_MICROBLOG))
        if self.addr.blog_of(actor.jid):
            await self.remove_follower_in(tx, actor, who)
        log.info("block: %s blocks %s", actor.jid, who)
        return who, added

    async def block_and_report(self, actor: Actor, blocks: Sequence[tuple[str, Report | None]]) -> None:
        """A XEP-0191 block list change with XEP-0377 reports, all in one transaction.

        Raises:
            Forbidden (other servers' users), BadRequest, InvalidJid.
        """
        self._may_block(actor)
        async with self._tx() as tx:
            for target, report in blocks:
                if report is not None:
                    await self._moderation.report_in(tx, actor, target, report.reason, report.text)
                await self.block_in(tx, actor, target)
            await tx.commit()

    async def unblock(self, actor: Actor, *targets: str) -> list[tuple[str, bool]]:
        self._may_block(actor)
        out = []
        async with self._tx() as tx:
            for target in targets:
                who = self._blockee(actor, target)
                out.append((who, await tx.im.unblock(actor.jid, who)))
            await tx.commit()
        return out

    async def blocked(self, actor: Actor) -> list[str]:
        async with self._tx() as tx:
            return list(await tx.im.blocked(actor.jid))

    async def directory(self) -> list[tuple[Node, int]]:
        """Local users with a public blog, and their post counts (the HTTP user list)."""
        async with self._tx() as tx:
            return list(await tx.feed.public_blogs(self.addr.service_jid))
