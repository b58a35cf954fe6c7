# SPDX-License-Identifier: AGPL-3.0-or-later
"""Accounts: a user takes their posts with them (export) or leaves (delete) (core layer,
stdlib only).

An export is the user's blog and every comment they wrote on this server's
blogs. A deletion is one transaction that reuses the pubsub use cases, so
everything that hears of a retraction or a deleted node hears of these too:
every post is retracted (followers here and on other servers get the
retractions through the outbox, the public timeline and the search index drop
them), then the blog node is deleted (XEP-0060 §8.4 notifications), the
user's comments elsewhere are retracted, their subscriptions end (a remote
node's last local follower leaving ends the server's subscription there),
their roster entries say goodbye, and their preferences go.

A user confirms a deletion with a code that is bound to them, expires, and is void
after a few wrong guesses (`Confirmations`); a user's export is served behind a
link token that is unguessable and expires (`Links`). Both are kept in memory:
a restart forgets them, and the user asks again.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import errors, roster
from .addressing import Addressing
from .jid import parse, stored_bare
from .model import NS_MICROBLOG, Actor, Affiliation, FoundPost, NodeRef
from .moderation import Moderation
from .ports import Clock, RemoteDirectory
from .pubsub import PubsubService
from .remote_feeds import RemoteFeeds
from .transactions import Transactions, Tx
from .uri import xmpp_uri
from .visibility import all_items

log = logging.getLogger(__name__)

#: letters and digits nobody confuses when copying them (no 0/O, 1/I/L)
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
#: wrong guesses after which a code is void (31^8 codes: guessing one is hopeless anyway)
MAX_TRIES = 5


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    """A code as shown to people: two groups of four."""
    return f"{code[:4]}-{code[4:]}" if len(code) == CODE_LENGTH else code


def typed(code: str) -> str:
    """A code as a person typed it: any case, with or without the dash or spaces."""
    return "".join(code.split()).replace("-", "").upper()


@dataclass(frozen=True, slots=True)
class Issued:
    code: str
    expires: datetime


class CodeRefused(errors.Forbidden):
    """A confirmation code was refused; `reason` says why (none, expired, wrong, void)."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


class Confirmations:
    """One confirmation code per user at a time, bound to that user, valid for `ttl`."""

    def __init__(self, clock: Clock, ttl: timedelta = timedelta(minutes=10), max_tries: int = MAX_TRIES,
                 make: Callable[[], str] = new_code) -> None:
        self._clock = clock
        self.ttl = ttl
        self.max_tries = max_tries
        self._make = make
        self._codes: dict[str, tuple[str, datetime, int]] = {}

    def issue(self, user: str) -> Issued:
        """A new code for `user` (any earlier one is void)."""
        now = self._clock.now()
        self._codes = {u: c for u, c in self._codes.items() if c[1] > now}
        code = self._make()
        self._codes[user] = (code, now + self.ttl, 0)
        return Issued(code, now + self.ttl)

    def confirm(self, user: str, code: str) -> None:
        """Take `user`'s code: it is used up when right.

        Raises:
            CodeRefused: no code was issued to this user (another user's code is no code for
                them), it expired, it is wrong, or too many wrong guesses made it void.
        """
        held = self._codes.get(user)
        if held is None:
            raise CodeRefused("none", "there is no confirmation code waiting for you")
        expected, expires, tries = held
        if self._clock.now() >= expires:
            del self._codes[user]
            raise CodeRefused("expired", "that confirmation code has expired")
        if not hmac.compare_digest(typed(code).encode(), expected.encode()):
            if tries + 1 >= self.max_tries:
                del self._codes[user]
                raise CodeRefused("void", f"wrong confirmation code, {self.max_tries} times: it is void now")
            self._codes[user] = (expected, expires, tries + 1)
            raise CodeRefused("wrong", "wrong confirmation code")
        del self._codes[user]


class Links:
    """Unguessable tokens, each naming one user for `ttl` (a link to their export); a user has
    one at a time."""

    def __init__(self, clock: Clock, ttl: timedelta = timedelta(hours=1),
                 make: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> None:
        self._clock = clock
        self.ttl = ttl
        self._make = make
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def issue(self, user: str) -> Issued:
        now = self._clock.now()
        self._tokens = {t: h for t, h in self._tokens.items() if h[1] > now and h[0] != user}
        token = self._make()
        self._tokens[token] = (user, now + self.ttl)
        return Issued(token, now + self.ttl)

    def holder(self, token: str) -> str | None:
        """The user a live token names, or None (unknown or expired)."""
        held = self._tokens.get(token)
        if held is None or self._clock.now() >= held[1]:
            return None
        return held[0]


@dataclass(frozen=True, slots=True)
class Export:
    """A user's posts (their blog) and the comments they wrote on this server, newest first."""

    user: str
    blog: str
    posts: tuple[FoundPost, ...]
    comments: tuple[FoundPost, ...]


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What an account holds here: what a deletion removes (and whom it tells)."""

    user: str
    posts: int
    comments: int
    followers: int          # people and servers subscribed to the blog or holding it in their roster
    servers: int            # other servers among them
    following: int          # blogs and remote nodes the user follows


@dataclass(frozen=True, slots=True)
class Deleted:
    facts: AccountFacts
    #: remote nodes this server no longer follows (the network half: unsubscribe there)
    unsubscribe: tuple[NodeRef, ...]


class Accounts:
    """Export and deletion of a user's account (one transaction each)."""

    def __init__(self, addr: Addressing, transactions: Transactions, pubsub: PubsubService, remote: RemoteFeeds,
                 directory: RemoteDirectory, moderation: Moderation, clock: Clock,
                 confirmations: Confirmations | None = None, links: Links | None = None) -> None:
        self.addr = addr
        self._tx = transactions
        self._pubsub = pubsub
        self._remote = remote
        self._directory = directory
        self._moderation = moderation
        self.confirmations = confirmations or Confirmations(clock)
        self.links = links or Links(clock)

    def user_of(self, target: str) -> str:
        """The local user a local part, a bare JID or a blog JID names.

        Raises:
            InvalidJid, NoMicroblog (not a user of this server).
        """
        target = target.strip().removeprefix("xmpp:")
        jid = parse(target if "@" in target else f"{target}@{self.addr.users_domain}").bare
        user = self.addr.owner_of(jid) or jid
        if not self.addr.is_local_user(user):
            raise errors.NoMicroblog(f"{target[:128]} is not a user of this server ({self.addr.users_domain})")
        return user

    def _may_manage(self, actor: Actor, user: str) -> None:
        if not (actor.system or actor.jid == user or self._moderation.is_admin(actor)):
            raise errors.Forbidden("only the user and the administrators may do that")

    # ------------------------------------------------------------ export

    async def export(self, actor: Actor, target: str) -> Export:
        """A user's posts and comments (the user themself, an admin, or the system).

        Raises:
            InvalidJid, NoMicroblog (not a user here, or nothing of theirs is stored), Forbidden.
        """
        user = self.user_of(target)
        self._may_manage(actor, user)
        async with self._tx() as tx:
            export = await self._export_in(tx, user)
            # only an empty export needs the wider look: is anything of theirs stored at all?
            if not (export.posts or export.comments) and not await self._known_in(tx, user):
                raise errors.NoMicroblog(f"{user} has no blog, no comments and follows nobody here")
            return export

    def _blog_ref(self, user: str) -> NodeRef:
        """The user's blog node (a local user's; `user_of` and `own_blog` have checked that)."""
        return NodeRef(self.addr.blog_of(user) or "", NS_MICROBLOG)

    async def _export_in(self, tx: Tx, user: str) -> Export:
        ref = self._blog_ref(user)
        blog = ref.service
        node = await tx.nodes.get(ref)
        posts = [FoundPost(ref, item) async for item in all_items(tx, node)] if node is not None else []
        comments = [FoundPost(r, item) for r, item in await tx.feed.comments_by(user)]
        return Export(user, blog, tuple(reversed(posts)), tuple(reversed(comments)))

    async def export_link(self, actor: Actor) -> tuple[Issued, AccountFacts]:
        """A token for the actor's own export (their earlier one is void), and what it holds.

        Raises:
            Forbidden (not a user of this server), NoMicroblog (nothing of theirs is stored).
        """
        self._pubsub.nodes.own_blog(actor)
        async with self._tx() as tx:
            if not await self._known_in(tx, actor.jid):
                raise errors.NoMicroblog("you have no posts or comments here yet")
            facts = await self._facts_in(tx, actor.jid)
        return self.links.issue(actor.jid), facts

    async def export_by_link(self, token: str) -> Export:
        """The export a live link token names.

        Raises:
            ItemNotFound: unknown or expired token (or a user who has since left).
        """
        user = self.links.holder(token)
        if user is None:
            raise errors.ItemNotFound("this export link is unknown or has expired; ask for a new one")
        try:
            return await self.export(Actor.SYSTEM, user)
        except errors.NoMicroblog:
            raise errors.ItemNotFound("this export link is unknown or has expired; ask for a new one") from None

    # ------------------------------------------------------------ deletion

    async def ask_delete(self, actor: Actor) -> tuple[Issued, AccountFacts]:
        """A confirmation code for deleting the actor's own account, and what it would remove.

        Raises:
            Forbidden (not a user of this server).
        """
        self._pubsub.nodes.own_blog(actor)
        async with self._tx() as tx:
            facts = await self._facts_in(tx, actor.jid)
        return self.confirmations.issue(actor.jid), facts

    async def delete(self, actor: Actor, code: str) -> Deleted:
        """Delete the actor's own account, confirmed by the code `ask_delete` gave them.

        Raises:
            CodeRefused, Forbidden.
        """
        self._pubsub.nodes.own_blog(actor)
        self.confirmations.confirm(actor.jid, code)
        return await self._delete(actor.jid)

    async def delete_user(self, actor: Actor, target: str) -> Deleted:
        """An admin (or the command line) deletes a user's account.

        Raises:
            InvalidJid, NoMicroblog (not a user here, or nothing of theirs is stored), Forbidden.
        """
        if not actor.system and not self._moderation.is_admin(actor):
            raise errors.Forbidden("only the administrators of this server may do that")
        return await self._delete(self.user_of(target), must_exist=True)

    async def _delete(self, user: str, must_exist: bool = False) -> Deleted:
        async with self._tx() as tx:
            if must_exist and not await self._known_in(tx, user):
                raise errors.NoMicroblog(f"{user} has no blog, no comments and follows nobody here")
            done = await self._delete_in(tx, user)
            await tx.commit()
        f = done.facts
        log.info("account deleted: user=%s posts=%d comments=%d followers=%d servers=%d following=%d",
                 user, f.posts, f.comments, f.followers, f.servers, f.following)
        for ref in done.unsubscribe:
            await self._directory.unsubscribe(ref)
        return done

    async def _delete_in(self, tx: Tx, user: str) -> Deleted:
        facts = await self._facts_in(tx, user)
        ref = self._blog_ref(user)
        blog = ref.service
        node = await tx.nodes.get(ref)
        # reposts carry the post's text, credited to the user: they go with the posts (before the
        # node, whose posts they point to; another blog's repost is retracted like its own post)
        for rref, rid in await tx.items.quoting(xmpp_uri(ref.service, ref.node, ""), NS_MICROBLOG):
            if rref != ref and self.addr.owner_of(rref.service) is not None:  # timeline copies follow
                await self._pubsub.retract_in(tx, Actor.SYSTEM, rref, [rid], notify=True)
        if node is not None:
            # every post retracted (its comments node goes with it), then the node deleted:
            # retractions and the §8.4 deletion reach whoever each was sent to
            ids = list(await tx.items.ids_oldest_first(node))
            if ids:
                await self._pubsub.retract_in(tx, Actor.SYSTEM, ref, ids, notify=True)
            await self._pubsub.delete_node_in(tx, Actor.SYSTEM, ref)
        for cref, item in await tx.feed.comments_by(user):
            await self._pubsub.retract_in(tx, Actor.SYSTEM, cref, [item.item_id], notify=True)
        for aref, item in await tx.feed.attachments_by(user):  # their reactions to others' posts
            await self._pubsub.retract_in(tx, Actor.SYSTEM, aref, [item.item_id], notify=True)
        # what other blogs granted them ends with the account (a JID can be registered again by
        # someone else); a ban stays, or deleting an account would be a way out of it
        for aref, aff in await tx.affs.everywhere(user):
            if aref.service != blog and aff in (Affiliation.MEMBER, Affiliation.PUBLISHER):
                await self._pubsub.set_affiliations_in(tx, Actor.SYSTEM, aref, [(user, Affiliation.NONE)])
        unsubscribe = []
        for sub in await tx.subs.following(user):
            followed = await tx.nodes.get(sub.ref)
            if followed is None:
                continue
            if followed.remote:
                if await self._remote.unfollow_in(tx, Actor(user), sub.ref, sub.jid):
                    unsubscribe.append(sub.ref)
            else:
                await self._pubsub.unsubscribe_in(tx, Actor(user), sub.ref, sub.jid)
        # their followers' rosters lose the blog JID, theirs loses our JIDs
        for c in [*await tx.contacts.of_blog(blog), *await tx.contacts.of_contact(user)]:
            # RFC 6121 §3.3, §3.2: `unsubscribe` also cancels a request of ours still unanswered
            if c.sub_to or c.pending_out:
                await tx.outbox.add(roster.presence(c.blog, c.contact, "unsubscribe"))
            if c.subscribed or c.pending_in:
                await tx.outbox.add(roster.presence(c.blog, c.contact, "unsubscribed"))
        await tx.contacts.forget(blog, user)
        await tx.im.forget(user)
        await tx.outbox.forget_tallies(sender=blog)
        return Deleted(facts, tuple(unsubscribe))

    async def _known_in(self, tx: Tx, user: str) -> bool:
        return bool(await tx.nodes.get(self._blog_ref(user)) or await tx.feed.comments_by(user)
                    or await tx.subs.following(user) or await tx.contacts.of_contact(user)
                    or await tx.im.tracked(user)
                    or any(a in (Affiliation.MEMBER, Affiliation.PUBLISHER) for _, a in await tx.affs.everywhere(user)))

    async def _facts_in(self, tx: Tx, user: str) -> AccountFacts:
        ref = self._blog_ref(user)
        blog = ref.service
        node = await tx.nodes.get(ref)
        posts = len(await tx.items.ids_oldest_first(node)) if node is not None else 0
        readers = {stored_bare(s.jid) for s in await tx.subs.for_node(node)} if node is not None else set()
        readers |= {c.contact for c in await tx.contacts.of_blog(blog) if c.subscribed or c.pending_in}
        readers.discard(user)
        servers = {r.rpartition("@")[2] for r in readers if not self.addr.serves(r)}
        following = {s.ref for s in await tx.subs.following(user)}
        return AccountFacts(user, posts, len(await tx.feed.comments_by(user)), len(readers), len(servers),
                            len(following))
