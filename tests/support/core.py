# SPDX-License-Identifier: AGPL-3.0-or-later
"""The core as the composition root assembles it, over real storage, for tests below the wire."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from xmppblog.app import Core, build_core
from xmppblog.core import errors
from xmppblog.core.addressing import Addressing
from xmppblog.core.discovery import Discovery
from xmppblog.core.model import Actor, NodeRef, SubState
from xmppblog.core.ports import UnitOfWorkFactory
from xmppblog.core.pubsub import Limits
from xmppblog.core.remote_feeds import RemoteFeeds
from xmppblog.core.transactions import Transactions
from xmppblog.pubsub.xep_0277 import AtomCodec
from xmppblog.storage.search import SearchReader

ADDR = Addressing("blog.example.org", "example.org")


class NoRemoteDirectory:
    """The RemoteDirectory of a server that reaches no other server (tests of the core alone)."""

    async def resolve(self, target: str) -> tuple[str, NodeRef]:
        raise errors.NoMicroblog(f"{target[:64]} is not on this server")

    async def subscribe(self, ref: NodeRef) -> SubState:
        return SubState.PENDING

    async def unsubscribe(self, ref: NodeRef) -> None:
        return None

    async def publish(self, actor: Actor, ref: NodeRef, draft: object) -> str:
        raise errors.RemoteUnavailable("this server reaches no other server")


class FakeClock:
    """Moves only by `advance`."""

    def __init__(self) -> None:
        self.t = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


class Nobody:
    """Nobody is online (no IM deliveries are planned)."""

    async def online_among(self, bares: Sequence[str]) -> set[str]:
        return set()


class Everyone:
    """Everybody is online: chat deliveries are planned for every IM follower."""

    async def online_among(self, bares: Sequence[str]) -> set[str]:
        return set(bares)


def test_core(uows: UnitOfWorkFactory, engine: object, db_url: str, clock: FakeClock, limits: Limits = Limits(),
              online: object = Nobody(), new_id: Callable[[], str] | None = None,
              codec: AtomCodec | None = None, discovery: Discovery = Discovery()) -> Core:
    """build_core over `uows`, with no other server to reach."""
    codec = codec or AtomCodec()
    tx = Transactions(uows)
    remote = RemoteFeeds(ADDR, tx, codec, clock, limits.max_items_per_node)
    return build_core(tx, ADDR, clock, codec, online, SearchReader(engine, db_url), remote,  # type: ignore[arg-type]
                      NoRemoteDirectory(), limits, ("admin@example.org",), new_id=new_id, discovery=discovery)


test_core.__test__ = False  # type: ignore[attr-defined]  # a builder, not a test
