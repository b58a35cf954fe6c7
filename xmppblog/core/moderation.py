# SPDX-License-Identifier: AGPL-3.0-or-later
"""Moderation: admins' domain lists and users' abuse reports (core layer).

Admins are the bare JIDs of `[component] admins`. Domain lists changed here are
stored and added to the configured ones; spamguard applies them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from . import errors
from .jid import bare, parse
from .model import Actor
from .ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)

POLICIES = ("block", "allow")
MAX_REPORT_TEXT = 1000


class Moderation:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, admins: Sequence[str]) -> None:
        self._uow = uow
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
        """Record an abuse report about a JID (or a post's author). Returns the target's bare JID."""
        who = bare(target.removeprefix("xmpp:"))
        async with self._uow() as uow:
            await uow.stats.add_report(reporter.jid, who, reason[:256] or "urn:xmpp:reporting:abuse",
                                       text[:MAX_REPORT_TEXT], self._clock.now())
            await uow.commit()
        log.warning("abuse report: by=%s about=%s reason=%s", reporter.jid, who, reason)
        return who

    async def reports(self, actor: Actor, limit: int = 20) -> list[tuple[str, str, str, str, datetime]]:
        self._admin(actor)
        async with self._uow() as uow:
            return list(await uow.stats.reports(limit))

    async def drops(self, actor: Actor) -> list[tuple[str, str, int, datetime]]:
        self._admin(actor)
        async with self._uow() as uow:
            return list(await uow.stats.drops())
