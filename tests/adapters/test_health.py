# SPDX-License-Identifier: AGPL-3.0-or-later
"""/healthz and /metrics over the HTTP adapter: who may read what, and what a failure says."""

from __future__ import annotations

from collections import Counter

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from xmppblog.core.addressing import Addressing
from xmppblog.http.health import Health, Probes
from xmppblog.http.metrics import Metrics


class World:
    def __init__(self) -> None:
        self.host: str | None = None
        self.database_error: Exception | None = None
        self.round_trips = 0

    async def database(self) -> None:
        if self.database_error is not None:
            raise self.database_error

    async def round_trip(self) -> tuple[bool, dict[str, str]]:
        self.round_trips += 1
        return True, {"blog.example.org": "pubsub/service in 1 ms"}

    async def refresh(self) -> None:
        return None


async def client(world: World, operators_from=("127.0.0.0/8", "::1/128")) -> TestClient:
    metrics = Metrics(Addressing("blog.example.org", "example.org"), lambda: Counter({("rate-limit", "x.org"): 3}))
    health = Health(Probes("blog.example.org", lambda: world.host, world.database, world.round_trip,
                           lambda: None, world.refresh), metrics, operators_from)
    app = web.Application()
    health.register(app)
    c = TestClient(TestServer(app, host="127.0.0.1"))
    await c.start_server()
    return c


async def test_healthz_says_what_is_down():
    world = World()
    c = await client(world)
    try:
        r = await c.get("/healthz")
        assert r.status == 200 and (await r.json())["status"] == "ok"
        world.host = "not connected to the host server 127.0.0.1:5347 (stream error not-authorized)"
        world.database_error = OSError("disk I/O error")
        r = await c.get("/healthz")
        body = await r.json()
        assert r.status == 503 and body["status"] == "unavailable"
        assert "not-authorized" in body["reason"] and "disk I/O error" in body["reason"]
        # through a proxy, anyone: down and why in general, not the deployment's details
        r = await c.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
        body = await r.json()
        assert r.status == 503 and body["host"] == body["database"] == "down"
        assert body["reason"] == "the host server connection is down; the database is unavailable"
        assert "5347" not in str(body) and "disk" not in str(body) and "multicast" not in body
    finally:
        await c.close()


async def test_metrics_and_the_deep_check_are_for_operators_only():
    world = World()
    c = await client(world)
    try:
        r = await c.get("/metrics")
        assert r.status == 200
        families = {f.name: f for f in text_string_to_metric_families(await r.text())}
        assert families["xmppblog_spamguard_refused"].samples[0].value == 3
        # through a reverse proxy: whoever asked, it was not the operator's scraper
        assert (await c.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status == 403
        r = await c.get("/healthz?deep=1", headers={"Forwarded": "for=203.0.113.9"})
        assert "disco_refused" in await r.json() and world.round_trips == 0
        r = await c.get("/healthz?deep=1")
        assert (await r.json())["disco"] and world.round_trips == 1
        await c.get("/healthz?deep=1")
        assert world.round_trips == 1, "one round trip serves every caller for a while"
    finally:
        await c.close()
    outsider = await client(World(), operators_from=("10.0.0.0/8",))
    try:
        r = await outsider.get("/metrics")
        assert r.status == 403 and "operators_from" in await r.text()
    finally:
        await outsider.close()
