# SPDX-License-Identifier: AGPL-3.0-or-later
"""FollowService: follow and unfollow anyone, here or on another server (core layer).

A chat `follow`, a roster request to a remote author's proxy address and
their opposites all come here: a user of this server is followed in one
transaction (the IM subscription, the presence request that puts the blog JID
in the follower's roster); a user of another server through the remote feeds
(core/remote_feeds.py) and the `RemoteDirectory` port for the network half.
Adapters never decide local or remote themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import errors, roster
from .addressing import Addressing
from .jid import bare
from .model import NS_MICROBLOG, Actor, Delivery, NodeRef, SubState
from .ports import RemoteDirectory
from .pubsub import PubsubService
from .remote_feeds import RemoteFeeds
from .transactions import Transactions
from .uri import parse_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Followed:
    user: str            # whom, as a user JID (or the remote node's owner)
    state: SubState      # PENDING: waits for the owner, or for the remote server to confirm
    already: bool
    remote: bool = False


class FollowService:
    def __init__(self, addr: Addressing, transactions: Transactions, pubsub: PubsubService,
                 remote: RemoteFeeds, directory: RemoteDirectory) -> None:
        self.addr = addr
        self._tx = transactions
        self._pubsub = pubsub
        self._remote = remote
        self._directory = directory

    def local_user(self, target: str) -> tuple[str, str] | None:
        """(user JID, blog JID) if `target` (user JID, blog JID or xmpp: URI) names a user here.

        Raises:
            InvalidJid.
        """
        uri = parse_uri(target)
        if uri.node is not None and uri.node != NS_MICROBLOG:
            return None
        owner = self.addr.owner_of(uri.jid)
        if owner is not None:
            return owner, uri.jid
        blog = self.addr.blog_of(uri.jid)
        return (uri.jid, blog) if blog is not None else None

    # ------------------------------------------------------------ follow

    async def follow(self, actor: Actor, target: str) -> Followed:
        """Follow a user by chat (or roster, for remote authors): pending on protected blogs.

        Raises:
            InvalidJid, BadRequest (yourself), Forbidden (blocked, or a protected remote blog),
            NoMicroblog, RemoteUnavailable, and the subscribe refusals of PubsubService.
        """
        local = self.local_user(target)
        if local is None:
            return await self._follow_remote(actor, target)
        user, blog = local
        if user == actor.jid:
            raise errors.BadRequest("you can't follow yourself; your own posts are in `timeline` anyway")
        ref = NodeRef(blog, NS_MICROBLOG)
        async with self._tx() as tx:
            already = any(s.ref == ref and s.state is not SubState.NONE for s in await tx.subs.following(actor.jid))
            try:
                sub = await self._pubsub.subscribe_in(tx, ref, actor.jid, Delivery.IM)
            except errors.ClosedNode:
                raise errors.ClosedNode(f"{user}'s blog is only for people {user} listed") from None
            if sub.state is SubState.SUBSCRIBED:
                await roster.save(tx, *roster.ask_presence(await tx.contacts.get(blog, actor.jid), force=True))
            await tx.commit()
        log.info("follow: %s -> %s state=%s", actor.jid, user, sub.state)
        return Followed(user, sub.state, already)

    async def _follow_remote(self, actor: Actor, target: str) -> Followed:
        author, ref = await self._directory.resolve(target)
        follow = await self._remote.follow(actor, author, ref)
        state = SubState.SUBSCRIBED
        if follow.first:
            state = await self._directory.subscribe(ref)
        if state is SubState.NONE:  # the directory already ended the follow (RemoteFeeds.confirmed)
            raise errors.Forbidden(
                f"{author}'s blog is protected: add {ref.service} to your roster to ask {author} for access")
        return Followed(author, state, follow.already, remote=True)

    # ------------------------------------------------------------ unfollow

    async def unfollow(self, actor: Actor, target: str) -> str:
        """Stop following. Returns whom.

        Raises:
            InvalidJid, NotSubscribed, NoMicroblog, RemoteUnavailable.
        """
        local = self.local_user(target)
        if local is None:
            return await self._unfollow_remote_target(actor, target)
        user, blog = local
        ref = NodeRef(blog, NS_MICROBLOG)
        async with self._tx() as tx:
            removed = await self._pubsub.unsubscribe_all_in(tx, actor, ref, Delivery.IM)
            contact, events = roster.farewell(await tx.contacts.get(blog, actor.jid))
            await roster.save(tx, contact, events)
            await tx.commit()
        if not removed and not events:
            raise errors.NotSubscribed(f"you are not following {user}")
        return user

    async def _unfollow_remote_target(self, actor: Actor, target: str) -> str:
        uri = parse_uri(target)
        for node in await self._remote.followed_by(actor):
            if uri.ref == node.ref or bare(node.owner) == uri.jid or node.ref.service == uri.jid:
                await self._unfollow_remote(actor, node.ref)
                return node.owner
        author, ref = await self._directory.resolve(target)
        await self._unfollow_remote(actor, ref)
        return author

    async def _unfollow_remote(self, actor: Actor, ref: NodeRef) -> None:
        if await self._remote.unfollow(actor, ref):
            await self._directory.unsubscribe(ref)
            log.info("remote unsubscribe: service=%s node=%s (last local follower left)", ref.service, ref.node)
            if await self._remote.consented(ref.service, ref.node):
                # Someone followed it meanwhile (on another worker, say), and their subscribe may
                # have reached the remote service before this unsubscribe: ask once more, after it.
                await self._directory.subscribe(ref)
                log.info("remote subscribe again: service=%s node=%s (followed while unsubscribing)",
                         ref.service, ref.node)

    # ------------------------------------------------------------ lists

    async def following(self, actor: Actor) -> list[tuple[str, SubState]]:
        """Whom `actor` follows (user JIDs, or remote nodes' owners), with the state."""
        out: dict[str, SubState] = {}
        async with self._tx() as tx:
            for s in await tx.subs.following(actor.jid):
                owner = self.addr.owner_of(s.ref.service)
                if owner is None:  # a remote node cached here, or the public timeline
                    node = await tx.nodes.get(s.ref)
                    if node is None or not node.remote:
                        continue
                    owner = node.owner
                elif s.ref.node != NS_MICROBLOG:
                    continue  # a comments node
                out[owner] = s.state
        return sorted(out.items())
