# SPDX-License-Identifier: AGPL-3.0-or-later
"""Units of work as the core uses them: one per use case (core layer, stdlib only).

`Transactions()` opens a `Tx` over one storage unit of work. A `Tx` exposes the
repositories, `emit(event)` (the registered projections run at once, inside
the same transaction) and `commit()`, the one way to commit: it runs the
after-commit callbacks (the outbox sender's wake-up), so whatever the
transaction planned is sent as soon as it is durable.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from . import errors
from .events import Event
from .ports import (
    AffiliationRepo,
    ContactRepo,
    FeedRepo,
    ImRepo,
    ItemRepo,
    KeyRepo,
    NodeRepo,
    OutboxRepo,
    PeerKeyRepo,
    RemoteRepo,
    SearchRepo,
    StatsRepo,
    SubscriptionRepo,
    UnitOfWork,
    UnitOfWorkFactory,
)

log = logging.getLogger(__name__)

Handler = Callable[["Tx", Any], Awaitable[None]]


class Projections:
    """Who reacts to which domain event; filled once by the composition root."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = {}

    def on(self, kind: type, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def dispatch(self, tx: Tx, event: Event) -> None:
        for handler in self._handlers.get(type(event), ()):
            await handler(tx, event)


class Tx:
    """One open unit of work: repositories, domain events, one commit."""

    def __init__(self, uow: UnitOfWork, projections: Projections, after_commit: list[Callable[[], None]],
                 opened_at: float = 0.0) -> None:
        self.uow = uow
        #: when the use case began (Transactions.timer), for the time it took
        self.opened_at = opened_at
        self.nodes: NodeRepo = uow.nodes
        self.items: ItemRepo = uow.items
        self.subs: SubscriptionRepo = uow.subs
        self.affs: AffiliationRepo = uow.affs
        self.contacts: ContactRepo = uow.contacts
        self.outbox: OutboxRepo = uow.outbox
        self.im: ImRepo = uow.im
        self.feed: FeedRepo = uow.feed
        self.remote: RemoteRepo = uow.remote
        self.stats: StatsRepo = uow.stats
        self.keys: KeyRepo = uow.keys
        self.peers: PeerKeyRepo = uow.peers
        self.search: SearchRepo = uow.search
        self._projections = projections
        self._after_commit = after_commit
        self._after_this: list[Callable[[], None]] = []

    async def emit(self, event: Event) -> None:
        """Let every projection of `event` apply its consequences, in this transaction."""
        await self._projections.dispatch(self, event)

    def call_after(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back): for
        state outside the store that must not run ahead of it, such as a cache to expire."""
        self._after_this.append(callback)

    async def commit(self) -> None:
        await self.uow.commit()
        callbacks, self._after_this = self._after_this, []
        for callback in [*callbacks, *self._after_commit]:
            callback()


class _Open:
    def __init__(self, owner: Transactions) -> None:
        self._owner = owner
        self._uow: UnitOfWork | None = None

    async def __aenter__(self) -> Tx:
        opened_at = self._owner.timer()
        self._uow = self._owner.factory()
        uow = await self._uow.__aenter__()
        return Tx(uow, self._owner.projections, self._owner.after_commit, opened_at)

    async def __aexit__(self, *exc: object) -> None:
        assert self._uow is not None
        await self._uow.__aexit__(*exc)


class Transactions:
    """Opens units of work: `async with transactions() as tx: …; await tx.commit()`."""

    def __init__(self, factory: UnitOfWorkFactory, projections: Projections | None = None,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.factory = factory
        self.timer = timer
        self.projections = projections if projections is not None else Projections()
        self.after_commit: list[Callable[[], None]] = []

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every commit (the composition root wakes the outbox sender)."""
        self.after_commit.append(callback)

    def __call__(self) -> _Open:
        return _Open(self)


P = ParamSpec("P")
R = TypeVar("R")


def retry_contended(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run a use case again when a concurrent transaction wrote the same unique row first
    (e.g. two first posts creating the public timeline node at once): the loser kept
    nothing, so a second run sees the winner's row and succeeds."""
    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(3):
            try:
                return await fn(*args, **kwargs)
            except errors.Contended:
                if attempt == 2:
                    raise
                log.info("%s: a concurrent change won; running it again", fn.__name__)
        raise AssertionError("unreachable")
    return run
