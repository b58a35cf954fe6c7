# SPDX-License-Identifier: AGPL-3.0-or-later
"""`xmppblog export`, `xmppblog delete-user` and the per-server part of `xmppblog stats`:
the core over the database, without the XMPP component (command line).

They run beside a running server safely: every change is one transaction (SQLite waits
up to its busy timeout, 30 s, for the server's writes, and the server for ours), and
what it plans to send is written to the outbox like any other change, which the
running server's sender drains within a second (or the next `run`, at start). This
process never connects to XMPP.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from .app import Core, SystemClock, build_core, core_limits, delivery_policy, discovery_of, rtbl_nodes
from .config import Config
from .core import errors
from .core.addressing import Addressing
from .core.delivery import DeliveryPolicy
from .core.model import Actor, NodeRef, SubState
from .core.ports import UnitOfWork
from .core.remote_feeds import RemoteFeeds
from .core.status import by_server, other_servers, server_line
from .core.transactions import Transactions
from .pubsub.xep_0277 import AtomCodec, export_feed
from .storage import migrate
from .storage.engine import create_engine, sessionmaker
from .storage.repos import uow_factory
from .storage.search import SearchReader

log = logging.getLogger(__name__)


class NotMigrated(Exception):
    """The database has no schema yet: the command line does not migrate on its own."""


class Nobody:
    """Nobody is online for the command line: it plans no chat deliveries."""

    async def online_among(self, bares: object) -> set[str]:
        return set()


class Offline:
    """The RemoteDirectory of a process that does not talk to other servers: a remote node whose
    last local follower left keeps pushing until the running server, seeing no subscription
    of ours, asks it to stop (federation/inbound.py)."""

    async def resolve(self, target: str) -> tuple[str, NodeRef]:
        raise errors.RemoteUnavailable("the command line does not reach other servers")

    async def subscribe(self, ref: NodeRef) -> SubState:
        raise errors.RemoteUnavailable("the command line does not reach other servers")

    async def unsubscribe(self, ref: NodeRef) -> None:
        log.info("no longer followed here: service=%s node=%s (told to stop at its next push)", ref.service, ref.node)

    async def publish(self, actor: Actor, ref: NodeRef, draft: object) -> str:
        raise errors.RemoteUnavailable("the command line does not reach other servers")


@asynccontextmanager
async def offline_core(cfg: Config) -> AsyncIterator[Core]:
    """The core over the configured database, as `run` builds it, minus the component.

    Raises:
        NotMigrated: the database is not at this version's schema.
    """
    url = cfg.database.url
    if await migrate.current_revision(url) != migrate.head_revision(url):
        raise NotMigrated("the database is not migrated to this version: run `xmppblog migrate` "
                          "(or start `xmppblog run`) first")
    c, lim = cfg.component, cfg.limits
    engine = create_engine(url, cfg.database.sqlite_synchronous.upper())
    clock = SystemClock()
    addr = Addressing(c.jid, c.users_domain)
    tx = Transactions(uow_factory(sessionmaker(engine), clock, local=addr.serves))
    codec = AtomCodec()
    reserved = frozenset(NodeRef(service, node) for service, node in rtbl_nodes(cfg))
    remote = RemoteFeeds(addr, tx, codec, clock, lim.max_items_per_node, reserved)
    index = SearchReader(engine, url)
    try:
        yield build_core(tx, addr, clock, codec, Nobody(), index, remote, Offline(), core_limits(cfg), c.admins,
                         delivery_policy(cfg), discovery=discovery_of(cfg), firehose_items=cfg.firehose.max_items)
    finally:
        index.close()
        await engine.dispose()


async def export(cfg: Config, target: str, out: str | None) -> int:
    """Write a user's posts and comments as Atom to `out` (stdout if None). Returns the exit status."""
    try:
        async with offline_core(cfg) as core:
            found = await core.accounts.export(Actor.SYSTEM, target)
    except (errors.BlogError, NotMigrated) as exc:
        print(f"xmppblog: export: {_text(exc)}", file=sys.stderr)
        return 1
    feed = export_feed(found, datetime.now(UTC))
    if out is None:
        sys.stdout.write(feed)
    else:
        # readable by its owner only: an export holds protected posts too
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(feed)
    print(f"exported {found.user}: {len(found.posts)} post(s) and {len(found.comments)} comment(s)"
          + (f" to {out}" if out else ""), file=sys.stderr)
    return 0


async def delete_user(cfg: Config, target: str) -> int:
    """Delete a user's account and say what happens next. Returns the exit status."""
    try:
        async with offline_core(cfg) as core:
            done = await core.accounts.delete_user(Actor.SYSTEM, target)
    except (errors.BlogError, NotMigrated) as exc:
        print(f"xmppblog: delete-user: {_text(exc)}", file=sys.stderr)
        return 1
    f = done.facts
    print(f"deleted {f.user}: {f.posts} post(s) and {f.comments} comment(s) retracted, {f.followers} "
          f"follower(s) told (on {f.servers} other server(s)), {f.following} follow(s) ended; nothing of "
          "theirs is left in search, the public timeline, pages or feeds.")
    print("The retractions and notices are queued in the database: a running xmppblog sends them within "
          "a few seconds; if it is not running, it sends them when it starts.")
    if done.unsubscribe:
        print(f"{len(done.unsubscribe)} remote blog(s) had no other follower here: the running server asks "
              "their servers to stop at their next push.")
    return 0


async def delivery_lines(uow: UnitOfWork, cfg: Config) -> list[str]:
    """`xmppblog stats`: what each other server received, as counted and still in the outbox."""
    c = cfg.component
    views = by_server(other_servers(await uow.outbox.tallies_by_server(), Addressing(c.jid, c.users_domain)))
    days = DeliveryPolicy().keep_counts_for.days
    return ([f"deliveries to other servers (last {days} days): {len(views)} server(s)"]
            + [f"  {server_line(v)}" for v in views])


def _text(exc: Exception) -> str:
    return exc.text if isinstance(exc, errors.BlogError) and exc.text else str(exc)
