# SPDX-License-Identifier: AGPL-3.0-or-later
"""Delivery status: how far a post got, and what each remote server received (core layer,
stdlib only).

The outbox counts what became of every notification as it forgets it
(`DeliveryTally` per recipient server: delivered, failed) and still holds what
is pending or retrying; this module sums and judges those tallies. A server
is `reached` once something was handed to it and nothing is left to send,
`retrying` while a temporary bounce waits for its next try, `pending` while
nothing was sent yet, `failed` when every notification to it failed for
good. XMPP confirms nothing a component sends (THREATS.md fact 7): delivered
to another server means handed over and not bounced since.

Only a post's author (or an admin) may ask about it; anyone else gets the
answer a post that does not exist gets, so the question is no oracle.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from . import errors
from .addressing import Addressing
from .model import Actor, DeliveryTally
from .moderation import Moderation
from .posting import PostingService
from .transactions import Transactions


class ServerState(enum.StrEnum):
    REACHED = "reached"
    RETRYING = "retrying"
    PENDING = "pending"
    FAILED = "failed"


def state_of(t: DeliveryTally) -> ServerState:
    """A server's state: what is still moving decides first, then whether anything arrived."""
    if t.retrying:
        return ServerState.RETRYING
    if t.pending:
        return ServerState.PENDING
    if t.delivered:
        return ServerState.REACHED
    return ServerState.FAILED


@dataclass(frozen=True, slots=True)
class ServerView:
    tally: DeliveryTally
    state: ServerState

    @property
    def server(self) -> str:
        return self.tally.server


@dataclass(frozen=True, slots=True)
class PostStatus:
    """How far one post got: this server's users (`here`) and each other server."""

    item_id: str
    here: DeliveryTally
    servers: tuple[ServerView, ...]

    def count(self, state: ServerState) -> int:
        return sum(1 for s in self.servers if s.state is state)

    def of(self, state: ServerState) -> list[ServerView]:
        return [s for s in self.servers if s.state is state]

    @property
    def nothing_sent(self) -> bool:
        h = self.here
        return not self.servers and not (h.delivered or h.pending or h.retrying or h.failed)


def add(a: DeliveryTally, b: DeliveryTally) -> DeliveryTally:
    """Two tallies of the same server summed; the earlier next try."""
    tries = [t for t in (a.next_try, b.next_try) if t is not None]
    return replace(a, delivered=a.delivered + b.delivered, pending=a.pending + b.pending,
                   retrying=a.retrying + b.retrying, failed=a.failed + b.failed,
                   next_try=min(tries) if tries else None)


def summarize(item_id: str, tallies: Sequence[DeliveryTally], is_here: Callable[[str], bool]) -> PostStatus:
    """One post's tallies as its status: local users' summed as `here` ('' is what the bulk
    path counted; a recipient domain that is one of ours counts here too), the rest per server."""
    here = DeliveryTally("")
    servers: dict[str, DeliveryTally] = {}
    for t in tallies:
        if not t.server or is_here(t.server):
            here = add(here, replace(t, server=""))
        else:
            servers[t.server] = add(servers[t.server], t) if t.server in servers else t
    return PostStatus(item_id, here, by_server(servers.values()))


def other_servers(tallies: Iterable[DeliveryTally], addr: Addressing) -> list[DeliveryTally]:
    """The tallies of other servers: not this server's users ('') nor its own domains."""
    return [t for t in tallies if t.server and not addr.serves(t.server)]


def by_server(tallies: Iterable[DeliveryTally]) -> tuple[ServerView, ...]:
    """Tallies as judged server states, sorted by server name."""
    return tuple(ServerView(t, state_of(t)) for t in sorted(tallies, key=lambda t: t.server))


def server_line(v: ServerView) -> str:
    """One remote server's deliveries in a line, for admins (ad-hoc command, `xmppblog stats`)."""
    t = v.tally
    line = (f"{v.server}: {v.state.value}, {t.delivered} delivered, {t.pending} pending, "
            f"{t.retrying} retrying, {t.failed} failed")
    return line + (f" (next try {t.next_try:%Y-%m-%d %H:%M} UTC)" if t.next_try else "")


class DeliveryStatus:
    """`status ID` for authors and per-server delivery figures for admins (one read each)."""

    def __init__(self, transactions: Transactions, posting: PostingService, moderation: Moderation) -> None:
        self._tx = transactions
        self._posting = posting
        self._moderation = moderation
        self.addr = posting.addr

    async def of_post(self, actor: Actor, short: str) -> PostStatus:
        """How far the actor's post (short id as chat shows it) got.

        The author's own posts and comments are looked up; an admin may also name any post
        with `user/id`. Anyone else's post answers exactly like a post that does not exist.

        Raises:
            ItemNotFound, BadRequest (ambiguous among the actor's own posts).
        """
        admin = self._moderation.is_admin(actor)
        who = short.strip().lstrip("#").rpartition("/")[0]
        if who and not admin and (who if "@" in who else f"{who}@{self.addr.users_domain}") != actor.jid:
            # `user/id` would look beyond the actor's own posts (and list the matches when several)
            raise errors.ItemNotFound(f"No such post: {short}")
        async with self._tx() as tx:
            try:
                found = await self._posting.find_post_in(tx, actor, short, own_only=True)
                if found.item.publisher != actor.jid:
                    raise errors.ItemNotFound()  # somebody else's comment on the actor's blog
            except errors.ItemNotFound:
                if not admin:
                    raise errors.ItemNotFound(f"No such post: {short}") from None
                found = await self._posting.find_post_in(tx, Actor.SYSTEM, short)
            tallies = await tx.outbox.tallies_of(found.ref.service, found.ref.node, found.item.item_id)
        return summarize(found.item.item_id, tallies, self.addr.serves)

    async def servers(self, actor: Actor) -> tuple[ServerView, ...]:
        """Every other server's delivered / pending / retrying / failed notifications (admins only).

        Raises:
            Forbidden.
        """
        if not actor.system and not self._moderation.is_admin(actor):
            raise errors.Forbidden("only the administrators of this server may see that")
        async with self._tx() as tx:
            tallies = await tx.outbox.tallies_by_server()
        return by_server(other_servers(tallies, self.addr))
