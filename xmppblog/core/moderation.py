# SPDX-License-Identifier: AGPL-3.0-or-later
"""Moderation: admins' domain lists and users' abuse reports (core layer).

Admins are the bare JIDs of `[component] admins`. Domain lists changed here are
stored and added to the configured ones; spamguard applies them at once in the
process that made the change, and in the other workers of a cluster when they
read the lists again (app.py, `App.follow_shared_lists`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from . import errors
from .addressing import Addressing
from .jid import bare, parse
from .model import Actor
from .ports import Clock
from .transactions import Transactions, Tx
from ..protocol import REPORT_ABUSE

log = logging.getLogger(__name__)

POLICIES = ("block", "allow")
MAX_REPORT_TEXT = 1000


class Moderation:
    def __init__(self, addr: Addressing, transactions: Transactions, clock: Clock, admins: Sequence[str]) -> None:
        self.addr = addr
        self._uow = transactions
        self._clock = clock
        self.admins = frozenset(admins)

    def is_admin(self, actor: Actor) -> bool:
        return actor.jid in self.admins

    def _admin(self, actor: Actor) -> None:
        if not self.is_admin(actor):
            raise errors.Forbidden("only the administrators of this server may do that")

    async def set_domain(self, actor: Actor, domain: str, policy: str, on: bool) -> tuple[str, bool]:
        """Add or remove a domain on the block or allow list. Returns (domain, changed).

        Raises:
            Forbidden (not an admin), InvalidJid, BadRequest.
        """
        self._admin(actor)
        if policy not in POLICIES:
            raise errors.BadRequest(f"policy must be one of {', '.join(POLICIES)}")
        d = parse(domain).domain
        async with self._uow() as uow:
            changed = await uow.stats.set_domain_policy(d, policy, on, actor.jid, self._clock.now())
            await uow.commit()
        log.info("domain list changed: %s %s %s by %s", "add" if on else "remove", policy, d, actor.jid)
        return d, changed

    async def domain_policies(self) -> list[tuple[str, str]]:
        async with self._uow() as uow:
            return list(await uow.stats.domain_policies())

    async def report(self, reporter: Actor, target: str, reason: str, text: str) -> str:
        """Record an abuse report about a JID (or a post's author). Returns the target's bare JID.

        Raises:
            Forbidden (not a user of this server), InvalidJid.
        """
        async with self._uow() as tx:
            who = await self.report_in(tx, reporter, target, reason, text)
            await tx.commit()
        return who

    async def report_in(self, tx: Tx, reporter: Actor, target: str, reason: str, text: str) -> str:
        """`report` inside an open transaction (a XEP-0191 block carrying XEP-0377 reports)."""
        if not self.addr.is_local_user(reporter.jid):
            raise errors.Forbidden(f"reports come from users of {self.addr.users_domain}; "
                                   "tell your own server's admins")
        who = bare(target.removeprefix("xmpp:"))
        await tx.stats.add_report(reporter.jid, who, reason[:256] or REPORT_ABUSE, text[:MAX_REPORT_TEXT],
                                  self._clock.now())
        log.warning("abuse report: by=%s about=%s reason=%s", reporter.jid, who, reason[:64])
        return who

    async def reports(self, actor: Actor, limit: int = 20) -> list[tuple[str, str, str, str, datetime]]:
        """The latest reports, newest first."""
        self._admin(actor)
        async with self._uow() as uow:
            return list(await uow.stats.reports(limit))

    async def reporters(self, actor: Actor, limit: int = 30) -> list[tuple[str, int, int, datetime]]:
        """(reporter, reports, JIDs reported, latest) per reporter, most recent first: one
        flooding reporter is one line, and nobody's report is pushed out of sight."""
        self._admin(actor)
        async with self._uow() as uow:
            return list(await uow.stats.report_counts(limit))

    async def drops(self, actor: Actor) -> list[tuple[str, str, int, datetime]]:
        self._admin(actor)
        async with self._uow() as uow:
            return list(await uow.stats.drops())
