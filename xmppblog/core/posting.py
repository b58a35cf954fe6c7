# SPDX-License-Identifier: AGPL-3.0-or-later
"""What IM users do with posts: post, reply, repost, delete, by short id (core layer).

Short ids are what chat shows under a post (`#3f9a1c`): a prefix of the item
id, or the whole id when it is short. Looking one up searches the user's own
blog first, then the nodes they follow, then everything they may read; the
first of those that has a match decides, and within it several matches are
ambiguous (answer with `user/id` to choose), so a post planted elsewhere with
a look-alike id never takes over a reply, a repost or a delete; a delete
looks only at the user's own blog and what they published. A reply goes
to the comments node of the post's own origin, whatever link the post
carries; a repost copies only what is public.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import errors
from .addressing import Addressing
from .model import NS_MICROBLOG, Actor, FoundPost, NodeRef, Scope
from .ports import EntryCodec, RemoteDirectory
from .pubsub import PubsubService
from .transactions import Transactions, Tx, retry_contended
from .uri import parse_uri, xmpp_uri
from .visibility import is_public, may_read_ref

MIN_SHORT = 3
#: the ids this server (and other xmppblog servers) choose (secrets.token_hex(6), core/pubsub.py);
#: chat shows their first characters, every other id whole (im/text.py short_id)
OUR_ID = re.compile(r"[0-9a-f]{12}")
_PREFIX_OF_OURS = re.compile(r"[0-9a-f]{1,11}")
#: candidates read per scope: a flood of look-alike ids elsewhere cannot push a match out
CANDIDATES = 21

#: builds the Atom draft of a chat text: (text, in_reply_to=(atom id, href) | None, via=uri | None)
DraftMaker = Callable[..., object]


@dataclass(frozen=True, slots=True)
class Done:
    """What happened to a post, for the answer: whose post, and the new item's id."""

    author: str
    item_id: str
    new_id: str = ""


class PostingService:
    def __init__(self, addr: Addressing, transactions: Transactions, pubsub: PubsubService, codec: EntryCodec,
                 directory: RemoteDirectory) -> None:
        self.addr = addr
        self._tx = transactions
        self._pubsub = pubsub
        self._codec = codec
        self._directory = directory

    async def post(self, actor: Actor, draft: object) -> str:
        """Publish on the actor's own blog. Returns the item id."""
        return await self._pubsub.publish(actor, self._pubsub.nodes.own_blog(actor), None, draft)

    # ------------------------------------------------------------ short ids

    async def find_post_in(self, tx: Tx, actor: Actor, short: str, own_only: bool = False) -> FoundPost:
        """The post a short id (`3f9a1c`, or `alice/3f9a1c` to choose among several) names.

        A whole id names its post too, however short or long, and may hold a '/' of its own
        (clients choose ids). A short id of ours is a prefix of at least MIN_SHORT characters.

        Raises:
            ItemNotFound: none. BadRequest: ambiguous (the answer lists ids that each name one).
        """
        text = short.strip().lstrip("#")
        who, slash, s = text.partition("/")
        try:
            if slash and who and s:
                # user/id, else an id with a '/' of its own
                with contextlib.suppress(errors.ItemNotFound):
                    return await self._find_in(tx, actor, who, s, own_only)
            return await self._find_in(tx, actor, "", text, own_only)
        except errors.ItemNotFound:
            raise errors.ItemNotFound(f"No such post: {short}") from None

    async def _find_in(self, tx: Tx, actor: Actor, who: str, s: str, own_only: bool) -> FoundPost:
        if not s or len(s) > 256:
            raise errors.ItemNotFound(s)
        blog = self.addr.blog_of(actor.jid)
        scopes: list[Scope]
        author = ""
        if who:
            author = who if "@" in who else f"{who}@{self.addr.users_domain}"
            scopes = [Scope(service=self.addr.blog_of(author)) if self.addr.is_local_user(author) else Scope()]
        elif own_only:  # the actor's blog (their posts and comments on them), and their comments elsewhere
            scopes = ([Scope(service=blog)] if blog else []) + [Scope(publisher=actor.jid)]
        else:
            # their own posts (not comments others chose ids for), what they follow, what is public:
            # each narrowed in SQL, so look-alike ids elsewhere cannot push a match out
            scopes = ([Scope(service=blog, node=NS_MICROBLOG)] if blog else []) + [
                Scope(follower=actor.jid), Scope(open_only=True)]
        readable: dict[NodeRef, bool] = {}
        for scope in scopes:
            # the whole id always, however many longer ids share it; a prefix only from MIN_SHORT
            rows = list(await tx.feed.find(s, CANDIDATES, replace(scope, exact=True)))
            if len(s) >= MIN_SHORT:
                rows += [r for r in await tx.feed.find(s, CANDIDATES, scope) if r not in rows]
            found = [FoundPost(ref, item) for ref, item in rows  # attachments (XEP-0470) are no posts
                     if (not who or item.publisher == author) and not ref.is_attachments
                     and await may_read_ref(tx, actor, ref, readable)]
            if not found:
                continue
            exact = [p for p in found if p.item.item_id == s]
            if len(found) == 1:
                return found[0]
            if len(exact) == 1 and (who or not _PREFIX_OF_OURS.fullmatch(s)
                                    or all(p.ref == exact[0].ref for p in found)):
                # The whole id, among longer ones: of the author named, or one no short form of
                # ours can be (a planted exact id never wins over the post a prefix of ours names).
                return exact[0]
            names = ", ".join(self._unambiguous(found, s)) or "none: give the post's whole id"
            raise errors.BadRequest(f"{s} matches {len(found)} posts; give more of its id, or one of: {names}")
        raise errors.ItemNotFound(s)

    def _unambiguous(self, found: list[FoundPost], s: str) -> list[str]:
        """For each post found, a qualified id that names it alone (`find_post_in` resolves it)."""
        names = set()
        for p in found:
            publisher = p.item.publisher
            who = publisher.split("@")[0] if self.addr.is_local_user(publisher) else publisher
            same_author = [q for q in found if q.item.publisher == publisher]
            if len(same_author) == 1:
                names.add(f"{who}/{s}")
            elif sum(q.item.item_id == p.item.item_id for q in same_author) == 1:
                names.add(f"{who}/{p.item.item_id}")
        return sorted(names)

    # ------------------------------------------------------------ reply, repost, delete

    def reply_target(self, found: FoundPost) -> NodeRef:
        """Where a reply to `found` goes: its comments node on the node's own service.

        A remote post may name its comments node (XEP-0277 <link rel='replies'/>); that link
        is followed only to a comments node of the same service the post came from.
        """
        if found.ref.is_comments:
            return found.ref
        if self.addr.owner_of(found.ref.service) is None:
            link = self._codec.facts(found.item.payload).replies
            try:
                named = parse_uri(link).ref if link else None
            except errors.InvalidJid:
                named = None
            if named is not None and named.service == found.ref.service and named.is_comments:
                return named
        return found.ref.comments(found.item.item_id)

    @retry_contended
    async def reply(self, actor: Actor, short: str, text: str, make_draft: DraftMaker) -> Done:
        """Comment on a post, in one transaction when its origin is here; a reply to another
        server is published there once the post is found."""
        async with self._tx() as tx:
            found = await self.find_post_in(tx, actor, short)
            target = self.reply_target(found)
            href = xmpp_uri(found.ref.service, found.ref.node, found.item.item_id)
            atom_id = self._codec.facts(found.item.payload).atom_id or href
            draft = make_draft(text, in_reply_to=(atom_id, href))
            if self.addr.owner_of(target.service) is not None:
                new_id = await self._pubsub.publish_in(tx, actor, target, None, draft)
                await tx.commit()
                return Done(found.item.publisher, found.item.item_id, new_id)
        self._pubsub.nodes.own_blog(actor)  # only local users reply to other servers (from their blog JID)
        new_id = await self._directory.publish(actor, target, draft)
        return Done(found.item.publisher, found.item.item_id, new_id)

    @retry_contended
    async def repost(self, actor: Actor, short: str, make_draft: DraftMaker) -> Done:
        """Republish a public post on the actor's own blog, crediting its author (one transaction).

        Raises:
            ItemNotFound, BadRequest (your own post), Forbidden (not public).
        """
        async with self._tx() as tx:
            found = await self.find_post_in(tx, actor, short)
            if found.item.publisher == actor.jid:
                raise errors.BadRequest("That is your own post already")
            access = await tx.nodes.get(found.ref.parent() if found.ref.is_comments else found.ref)
            if access is None or not is_public(access):
                raise errors.Forbidden("That post is not public: only its blog's readers may see it, so it "
                                       "cannot be reposted")
            text = self._codec.summary(found.item.payload)
            uri = xmpp_uri(found.ref.service, found.ref.node, found.item.item_id)
            new_id = await self._pubsub.publish_in(tx, actor, self._pubsub.nodes.own_blog(actor), None,
                                                   make_draft(f"♻ {found.item.publisher}: {text}", via=uri),
                                                   quoted=self._codec.facts(found.item.payload).discoverable)
            await tx.commit()
        return Done(found.item.publisher, found.item.item_id, new_id)

    @retry_contended
    async def delete(self, actor: Actor, short: str) -> Done:
        """Retract one of the actor's own posts (found among their own nodes only), in one transaction.

        Raises:
            ItemNotFound, BadRequest (ambiguous), Forbidden (somebody else's post).
        """
        async with self._tx() as tx:
            try:
                found = await self.find_post_in(tx, actor, short, own_only=True)
            except errors.ItemNotFound:
                await self.find_post_in(tx, actor, short)  # raises ItemNotFound if it names no post at all
                raise errors.Forbidden("You can only delete your own posts") from None
            await self._pubsub.retract_in(tx, actor, found.ref, [found.item.item_id], None)
            await tx.commit()
        return Done(found.item.publisher, found.item.item_id)
