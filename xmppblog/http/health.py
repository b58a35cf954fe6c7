# SPDX-License-Identifier: AGPL-3.0-or-later
"""`GET /healthz` and `GET /metrics` (adapter layer).

/healthz answers 200 when the host connection and the database are up, 503
with the reason otherwise, as JSON (the details only to operators, below). `?deep=1` adds a disco round trip through
the host to the service JID and to a blog JID (what `xmppblog doctor` checks
when the component is running: the host refuses it a connection of its own).
A deep check sends two stanzas, so one result serves every caller for
DEEP_CACHE_SECONDS.

/metrics and the deep check are for the server's operators: they name the
other servers this server's users are read on, and make it send stanzas. Only
addresses in `[http] operators_from` (loopback by default) get them, and never
through a reverse proxy (a request carrying forwarding headers came from
someone else), so putting the listener behind a public proxy exposes neither.

/metrics is the Prometheus text format of the process's registry
(http/metrics.py), with the stored-state gauges read at scrape time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import Metrics
from .snapshot import Snapshot

log = logging.getLogger(__name__)

DEEP_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Probes:
    """What /healthz asks; the composition root wires each to the real part."""

    service: str
    #: None when connected to the host, else why not
    host_problem: Callable[[], str | None]
    #: raises when the database cannot answer
    database: Callable[[], Awaitable[None]]
    #: a disco round trip through the host: {JID: identity or error text}, and whether all answered
    round_trip: Callable[[], Awaitable[tuple[bool, dict[str, str]]]]
    #: the host's XEP-0033 service as discovered, or None
    multicast: Callable[[], str | None]
    #: refresh the stored-state gauges before a scrape
    refresh_metrics: Callable[[], Awaitable[None]]


#: headers a reverse proxy adds: the request came from someone other than the peer address
FORWARDED = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class Health:
    def __init__(self, probes: Probes, metrics: Metrics, operators_from: tuple[str, ...] = ("127.0.0.0/8", "::1/128"),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.probes = probes
        self.metrics = metrics
        self.operators = [ipaddress.ip_network(n, strict=False) for n in operators_from]
        # a deep check sends stanzas: one answer serves every caller for a while
        self._deep = Snapshot(probes.round_trip, DEEP_CACHE_SECONDS, monotonic)

    def register(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.scrape)

    def _operator(self, request: web.Request) -> bool:
        """Whether the request comes straight from an address in [http] operators_from."""
        if any(h in request.headers for h in FORWARDED):
            return False
        try:
            address = ipaddress.ip_address((request.remote or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.operators)

    async def _database_problem(self) -> str | None:
        try:
            await asyncio.wait_for(self.probes.database(), timeout=5)
        except TimeoutError:
            return "the database did not answer within 5 s"
        except Exception as exc:  # whatever the driver raises is the reason
            return f"the database is unavailable: {type(exc).__name__}: {exc}"
        return None

    async def healthz(self, request: web.Request) -> web.Response:
        """Up or down for anyone; the details (the driver's error, the host's address, the disco
        round trip) for operators only: they would tell an outsider about the deployment."""
        operator = self._operator(request)
        host = self.probes.host_problem()
        database = await self._database_problem()
        problems = [p for p in (host, database) if p]
        body: dict[str, Any] = {"service": self.probes.service,
                                "host": "connected" if host is None else "down",
                                "database": "ok" if database is None else "down"}
        if operator:
            body.update(host=host or "connected", database=database or "ok", multicast=self.probes.multicast())
        if request.query.get("deep") == "1" and not operator:
            body["disco_refused"] = (f"a disco round trip is for this server's operators: {request.remote} is not "
                                     "in [http] operators_from, or the request came through a proxy")
        elif request.query.get("deep") == "1" and host is None:
            ok, answers = await self._deep.get()
            body["disco"] = answers
            if not ok:
                problems.append("a disco round trip through the host failed: "
                                + "; ".join(f"{jid}: {what}" for jid, what in answers.items()))
        body["status"] = "ok" if not problems else "unavailable"
        if problems:
            log.info("healthz: unavailable: %s", "; ".join(problems))
            body["reason"] = "; ".join(problems) if operator else "; ".join(
                what for what, down in (("the host server connection is down", host),
                                        ("the database is unavailable", database)) if down)
        return web.json_response(body, status=503 if problems else 200)

    async def scrape(self, request: web.Request) -> web.Response:
        if not self._operator(request):
            log.info("metrics refused: %s is not in [http] operators_from or came through a proxy", request.remote)
            return web.Response(status=403, text="metrics are for this server's operators: scrape from an address "
                                                 "in [http] operators_from, not through a proxy\n")
        try:
            await self.probes.refresh_metrics()
        except Exception:  # a scrape still reports what the process counts itself
            log.warning("metrics: could not read the outbox and subscription gauges", exc_info=True)
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
