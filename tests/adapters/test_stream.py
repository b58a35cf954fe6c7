# SPDX-License-Identifier: AGPL-3.0-or-later
"""GET /api/stream (issue #17): Server-Sent Events of the posts that may leave this server,
filtered, resumable with Last-Event-ID up to a day back, with a heartbeat, CORS, bounded
per client; over real storage with aiohttp's test client."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from xmppblog.core.model import NS_MICROBLOG, NodeRef
from xmppblog.http.server import HttpApi
from xmppblog.http.stream import StreamHub, StreamLimits

from ..storage.test_service_storage import ALICE, CAROL, draft

ALICE_BLOG = NodeRef("alice@blog.example.org", NS_MICROBLOG)
CAROL_BLOG = NodeRef("carol@blog.example.org", NS_MICROBLOG)


@pytest.fixture
async def http(stack):
    core, uow, clock = stack

    async def stats():
        return {}

    for user in (ALICE, CAROL):  # the stream carries consented posts only
        await core.social.discoverable(user, True)
    hub = StreamHub(core.stream, poll_seconds=0.05)
    core.transactions.on_commit(hub.wake)
    api = HttpApi(core.pubsub, core.social, core.search, "http://blog.example.org", stats, stream=hub,
                  stream_limits=StreamLimits(total=10, per_client=2), heartbeat_seconds=0.3)
    client = TestClient(TestServer(api.app))
    await client.start_server()
    yield core, clock, client
    await client.close()


async def events(resp, n: int, timeout: float = 5.0) -> tuple[list[dict], list[str]]:
    """The next `n` events of an open stream: their fields, and the comment lines seen meanwhile."""
    out: list[dict] = []
    comments: list[str] = []
    event: dict = {}

    async def read() -> None:
        nonlocal event
        while len(out) < n:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                comments.append(line)
            elif not line:
                if event:
                    out.append(event)
                    event = {}
            else:
                field, _, value = line.partition(": ")
                event[field] = value
    await asyncio.wait_for(read(), timeout)
    return out, comments


async def test_posts_stream_as_stored_and_only_those_that_may_leave(http):
    core, clock, client = http
    await core.pubsub.publish(ALICE, ALICE_BLOG, "before", draft("before the client came"))
    await core.social.protect(CAROL, True)
    resp = await client.get("/api/stream")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p1", draft("first #news"))
    await core.pubsub.publish(CAROL, CAROL_BLOG, "secret", draft("protected"))
    await core.pubsub.publish(ALICE, ALICE_BLOG.comments("p1"), "c1", draft("a comment"))
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p2", draft("second"))
    got, _ = await events(resp, 2)
    assert [e["event"] for e in got] == ["post", "post"]
    data = [json.loads(e["data"]) for e in got]
    assert [(d["id"], d["author"], d["text"]) for d in data] == [
        ("p1", "alice@example.org", "first #news"), ("p2", "alice@example.org", "second")]
    assert data[0]["entry"].startswith("<") and "first #news" in data[0]["entry"]
    assert data[0]["source"] == "alice@blog.example.org"
    assert got[0]["id"] != got[1]["id"] and got[0]["id"].startswith("v1-")
    resp.close()

    # resumed from the first event: the second again, nothing twice; filters apply
    resp = await client.get("/api/stream", headers={"Last-Event-ID": got[0]["id"]})
    again, _ = await events(resp, 1)
    assert json.loads(again[0]["data"])["id"] == "p2"
    resp.close()
    resp = await client.get("/api/stream?tag=news", headers={"Last-Event-ID": "v1-0"})
    tagged, _ = await events(resp, 1)
    assert json.loads(tagged[0]["data"])["id"] == "p1"
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p3", draft("not tagged"))
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p4", draft("tagged again #news"))
    tagged, _ = await events(resp, 1)
    assert json.loads(tagged[0]["data"])["id"] == "p4"
    resp.close()


async def test_resuming_reaches_a_day_back_at_most(http):
    core, clock, client = http
    await core.pubsub.publish(ALICE, ALICE_BLOG, "old", draft("two days old"))
    clock.advance(2 * 86400)
    await core.pubsub.publish(ALICE, ALICE_BLOG, "new", draft("fresh"))
    resp = await client.get("/api/stream", headers={"Last-Event-ID": "v1-0"})
    got, _ = await events(resp, 1)
    assert json.loads(got[0]["data"])["id"] == "new"
    resp.close()


async def test_a_heartbeat_keeps_an_idle_stream_open(http):
    core, clock, client = http
    resp = await client.get("/api/stream")
    with pytest.raises(asyncio.TimeoutError):
        await events(resp, 1, timeout=1.0)
    line = ""
    for _ in range(5):
        line = (await asyncio.wait_for(resp.content.readline(), 2)).decode()
        if line.startswith(": keepalive"):
            break
    assert line.startswith(": keepalive")
    resp.close()


async def test_bad_requests_and_too_many_streams(http):
    core, clock, client = http
    r = await client.get("/api/stream", headers={"Last-Event-ID": "123; DROP TABLE"})
    assert r.status == 400 and "Last-Event-ID" in (await r.json())["error"]
    r = await client.get("/api/stream?author=not a jid@@")
    assert r.status == 400
    first, second = await client.get("/api/stream"), await client.get("/api/stream")
    third = await client.get("/api/stream")
    assert (first.status, second.status, third.status) == (200, 200, 429)
    assert third.headers["Access-Control-Allow-Origin"] == "*"
    first.close()
    await asyncio.sleep(0.3)
    fourth = await client.get("/api/stream")
    assert fourth.status == 200, "a closed stream gives its place back"
    second.close()
    fourth.close()


async def test_resuming_where_only_comments_follow_does_not_spin(http):
    core, clock, client = http
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p1", draft("a post"))
    resp = await client.get("/api/stream", headers={"Last-Event-ID": "v1-0"})
    got, _ = await events(resp, 1)
    await core.pubsub.publish(ALICE, ALICE_BLOG.comments("p1"), "c1", draft("only a comment after it"))
    reads = [0]
    real = core.stream.after

    async def counted(position, limit):
        reads[0] += 1
        return await real(position, limit)

    core.stream.after = counted
    resp.close()
    resp = await client.get("/api/stream", headers={"Last-Event-ID": got[0]["id"]})
    await asyncio.sleep(1.0)
    assert reads[0] < 30, f"{reads[0]} reads in a second: the stream spins"
    resp.close()


async def test_a_client_resuming_gets_nothing_since_retracted_or_protected(http):
    core, clock, client = http
    watcher = await client.get("/api/stream")  # keeps the hub reading
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p1", draft("soon protected"))
    await core.pubsub.publish(CAROL, CAROL_BLOG, "c1", draft("soon deleted"))
    await core.pubsub.publish(CAROL, CAROL_BLOG, "c2", draft("stays"))
    await events(watcher, 3)
    await core.social.protect(ALICE, True)
    await core.pubsub.retract(CAROL, CAROL_BLOG, ["c1"], notify=True)
    resp = await client.get("/api/stream", headers={"Last-Event-ID": "v1-0"})
    got, _ = await events(resp, 1)
    assert [json.loads(e["data"])["id"] for e in got] == ["c2"]
    with pytest.raises(asyncio.TimeoutError):
        await events(resp, 1, timeout=0.5)
    watcher.close()
    resp.close()


async def test_a_failed_start_gives_the_slot_back_and_cursors_are_bounded(http):
    from xmppblog.core import errors
    core, clock, client = http
    real = core.stream.last_position

    async def down():
        raise errors.StorageUnavailable("database down")

    core.stream.last_position = down
    for _ in range(3):
        assert (await client.get("/api/stream")).status == 503
    core.stream.last_position = real
    ok = await client.get("/api/stream")
    assert ok.status == 200, "no slot was kept by the failed starts"
    ok.close()
    assert (await client.get("/api/stream", headers={"Last-Event-ID": "v1-" + "f" * 16})).status == 400
    future = await client.get("/api/stream", headers={"Last-Event-ID": "v1-" + "f" * 15})
    assert future.status == 200
    await core.pubsub.publish(ALICE, ALICE_BLOG, "p9", draft("after a cursor from the future"))
    got, _ = await events(future, 1)
    assert json.loads(got[0]["data"])["id"] == "p9", "a cursor beyond the last post streams from now"
    future.close()
