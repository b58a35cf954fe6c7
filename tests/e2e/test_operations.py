# SPDX-License-Identifier: AGPL-3.0-or-later
"""What an admin's monitoring reads from a running xmppblog: /metrics and /healthz."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ..support import ports
from .test_im import chat_follow, greeted
from .test_pubsub import NODE, blog


def scrape(alpha) -> dict[str, float]:
    """Every sample of /metrics, by name and labels, parsed by Prometheus's own parser."""
    with urllib.request.urlopen(f"http://{alpha.ip}:{ports.HTTP}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=")  # the Prometheus text format
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}"
                            if s.labels else "")
            samples[key] = s.value
    return samples


def healthz(alpha, query: str = "") -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{alpha.ip}:{ports.HTTP}/healthz{query}", timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def test_metrics_move_when_a_post_is_published_and_delivered(clients, component, alpha):
    opal, otto = await clients("opal"), await clients("otto")
    await greeted(otto)
    await chat_follow(otto, "opal")
    before = scrape(alpha)
    for name in ("xmppblog_posts_published_total", 'xmppblog_notifications_sent_total{kind="im_post"}',
                 "xmppblog_outbox_depth", "xmppblog_outbox_oldest_seconds", "xmppblog_publish_seconds_count",
                 "xmppblog_delivery_seconds_count", 'xmppblog_remote_subscriptions{state="subscribed"}'):
        assert name in before, f"{name} missing from /metrics"
    assert (await opal.say("counted by the metrics")).startswith("Posted #")
    assert await otto.inbox.wait(lambda m: "counted by the metrics" in (m["body"] or ""))
    after = before
    for _ in range(50):  # counted once the host confirmed the batch: a ping round trip later
        after = scrape(alpha)
        if after['xmppblog_notifications_sent_total{kind="im_post"}'] > \
                before['xmppblog_notifications_sent_total{kind="im_post"}']:
            break
        await asyncio.sleep(0.1)
    assert after["xmppblog_posts_published_total"] == before["xmppblog_posts_published_total"] + 1
    assert after["xmppblog_publish_seconds_count"] == before["xmppblog_publish_seconds_count"] + 1
    assert after['xmppblog_notifications_sent_total{kind="im_post"}'] >= \
        before['xmppblog_notifications_sent_total{kind="im_post"}'] + 1
    assert after["xmppblog_delivery_seconds_count"] > before["xmppblog_delivery_seconds_count"]
    assert after["xmppblog_outbox_depth"] >= 0 and after["xmppblog_outbox_oldest_seconds"] >= 0


async def test_healthz_says_the_host_and_database_are_up_and_routes_a_disco_round_trip(component, alpha):
    status, body = healthz(alpha)
    assert status == 200 and body["status"] == "ok", body
    assert body["host"] == "connected" and body["database"] == "ok"
    status, body = healthz(alpha, "?deep=1")
    assert status == 200, body
    assert body["disco"]["blog.alpha.test"].startswith("pubsub/service")
    blog = next(j for j in body["disco"] if j != "blog.alpha.test")
    assert blog.endswith("@blog.alpha.test") and body["disco"][blog].startswith("pubsub/pep")


async def test_metrics_show_deliveries_per_remote_server(clients, component, alpha):
    opal, xena = await clients("opal"), await clients("xena@beta.test")
    await xena.pubsub.subscribe(blog("opal"), NODE)
    assert (await opal.say("for a reader on beta.test")).startswith("Posted #")
    assert await xena.inbox.wait(lambda m: "for a reader on beta.test" in str(m))
    key = 'xmppblog_server_notifications{server="beta.test",state="delivered"}'
    for _ in range(50):
        samples = scrape(alpha)
        if samples.get(key, 0) >= 1:
            break
        await asyncio.sleep(0.1)
    assert samples.get(key, 0) >= 1, {k: v for k, v in samples.items() if "server_notifications" in k}
