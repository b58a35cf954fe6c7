# SPDX-License-Identifier: AGPL-3.0-or-later
"""The network-wide view, with consent (issue #17), across three real Prosody servers:
alpha's and beta's xmppblog are sources, an xmppblog on gamma aggregates their firehoses.

Discoverable posts from both sources are found by search and reach `track` users on the
aggregator; posts whose authors did not consent, and protected posts, appear nowhere there;
a retraction and a withdrawn consent disappear within 10 s; an aggregator down for a while
catches up with nothing missing."""

from __future__ import annotations

import asyncio
import base64
import re
import time
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from xmppblog.pubsub.signing import canonical

from ..support import ports
from ..support.clients import connect
from ..support.component import Component
from .test_pubsub import entry
from .test_spamguard import Rogue

# rogue.beta.test: a scripted source that answers as an xmppblog server and pushes forgeries
AGGREGATOR = 'sources = ["blog.alpha.test", "blog.beta.test", "rogue.beta.test"]'
ROGUE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


@pytest.fixture(scope="module")
async def rogue(net):
    public = base64.b64encode(ROGUE_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    source = Rogue(net["beta"].ip, xmppblog_keys=public)
    started = asyncio.get_running_loop().create_future()
    source.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    source.connect()
    await asyncio.wait_for(started, 10)
    yield source
    source.disconnect()


@pytest.fixture(scope="module")
def aggregator(net, component, component_beta, rogue, tmp_path_factory):
    comp = Component(net["gamma"], tmp_path_factory.mktemp("aggregator"), extra=f"[aggregator]\n{AGGREGATOR}\n")
    comp.start()
    yield comp
    assert comp.stop() == 0
    assert "Traceback" not in comp.log_text(), comp.log_text()[-4000:]


async def eventually(check, timeout: float = 10.0, every: float = 0.3):
    """`await check()` until it is truthy (returned) or `timeout` passes (AssertionError)."""
    end = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:.0f}s")
        await asyncio.sleep(every)


async def api_search(ip: str, q: str) -> list[str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{ip}:{ports.HTTP}/api/search", params={"q": q}) as r:
            assert r.status == 200, r.status
            return [p["text"] for p in (await r.json())["posts"]]


async def test_an_aggregator_sees_only_what_authors_let_it_see(net, aggregator, clients):
    gamma = net["gamma"]
    fia, gil, hana = await clients("fia"), await clients("gil"), await clients("hana")
    vera = await clients("vera@beta.test")
    tom = await connect("tom@gamma.test", gamma.ip)
    try:
        await asyncio.to_thread(aggregator.wait_log, "aggregator: following the firehose of blog.beta.test", 30)
        await asyncio.to_thread(aggregator.wait_log, "aggregator: following the firehose of blog.alpha.test", 30)
        assert (await tom.say("track quokkanet")).startswith("Tracking")
        assert (await fia.say("discoverable")).startswith("Your public posts are not discoverable")
        for who in (fia, vera, hana):
            assert (await who.say("discoverable on")).startswith("Your public posts from now on are discoverable")
        assert (await hana.say("protect on")).startswith("Your blog is now protected")
        started = time.monotonic()
        fia_post = await fia.say("quokkanet from alpha, discoverable #netwide")
        await vera.say("quokkanet from beta, discoverable")
        await gil.say("quokkanet from gil, who never consented #giltag")
        await hana.say("quokkanet from hana, protected #hanatag")
        # track across the network: live chat delivery on the aggregator
        got = await tom.inbox.wait(lambda m: "quokkanet from alpha" in (m["body"] or ""), 10)
        assert got is not None, "a tracked word from a source reached tom within 10 s"
        got = await tom.inbox.wait(lambda m: "quokkanet from beta" in (m["body"] or ""), 10)
        assert got is not None
        assert time.monotonic() - started < 12
        # search, by chat and HTTP, covers the network, and only what its authors let through
        found = await eventually(lambda: _both_found(tom))
        assert "gil" not in found and "hana" not in found
        texts = await api_search(gamma.ip, "quokkanet")
        assert sorted(t.split(",")[0] for t in texts) == ["quokkanet from alpha", "quokkanet from beta"], texts
        await asyncio.sleep(1)
        assert not any(("gil" in (m["body"] or "") or "hana" in (m["body"] or "")) for m in tom.inbox.items), \
            "posts without consent, and protected ones, never reach the aggregator's trackers"
        # trends, the directory and suggestions, by chat and HTTP
        trends = await tom.say("trends")
        assert "#netwide (1 author(s)" in trends and "giltag" not in trends and "hanatag" not in trends
        listed = await tom.say("directory")
        assert "fia@alpha.test (blog.alpha.test, 1 post(s))" in listed and "vera@beta.test (blog.beta.test" in listed
        assert "gil@" not in listed and "hana@" not in listed
        assert "fia@alpha.test" in await tom.say("suggest")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{gamma.ip}:{ports.HTTP}/api/directory") as r:
                d = await r.json()
        assert sorted((s["source"], s["state"]) for s in d["sources"]) == [
            ("blog.alpha.test", "following"), ("blog.beta.test", "following"), ("rogue.beta.test", "following")]
        # the stream (from the start) and the network page carry the consented posts only
        streamed = await _stream_texts(gamma.ip, 2.0)
        assert any("quokkanet from alpha" in t for t in streamed) and any("quokkanet from beta" in t for t in streamed)
        assert not any("gil" in t or "hana" in t for t in streamed), streamed
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{gamma.ip}:{ports.HTTP}/network") as r:
                page = await r.text()
        assert "quokkanet from alpha" in page and "gil@" not in page and "hana@" not in page

        # an edit reaches the aggregator within 10 s (the same post id again, signed again)
        items = await fia.pubsub.get_items("fia@blog.alpha.test", "urn:xmpp:microblog:0")
        ids = [i["id"] for i in items["pubsub"]["items"] if "quokkanet from alpha" in str(i)]
        await fia.pubsub.publish("fia@blog.alpha.test", "urn:xmpp:microblog:0", id=ids[0],
                                 payload=entry("quokkanet from alpha, edited"))
        await eventually(lambda: _present(gamma.ip, "quokkanet from alpha, edited"))
        assert sum("quokkanet from alpha" in t for t in await api_search(gamma.ip, "quokkanet")) == 1

        # a retraction, then a withdrawn consent, leave the aggregator within 10 s
        short = re.search(r"#(\w+)", fia_post).group(1)
        assert (await fia.say(f"delete {short}")).startswith("Deleted")
        await eventually(lambda: _absent(gamma.ip, "quokkanet from alpha"))
        assert (await vera.say("discoverable off")).startswith("Your posts are not discoverable")
        await eventually(lambda: _absent(gamma.ip, "quokkanet from beta"))

        # the aggregator is down for a while: it catches up with nothing missing
        aggregator.stop()
        for n in range(3):
            await fia.say(f"quokkanet while the aggregator was down {n}")
        aggregator.start()
        await eventually(lambda: _count(gamma.ip, "quokkanet while the aggregator was down", 3), timeout=30)
    finally:
        tom.disconnect()


async def _both_found(tom) -> str | None:
    answer = await tom.say("search quokkanet")
    ok = "fia@alpha.test: quokkanet from alpha" in answer and "vera@beta.test: quokkanet from beta" in answer
    return answer if ok else None


async def _stream_texts(ip: str, seconds: float) -> list[str]:
    """The texts /api/stream sends from its first post on, read for `seconds`."""
    import json
    texts: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{ip}:{ports.HTTP}/api/stream", headers={"Last-Event-ID": "v1-0"}) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    line = await asyncio.wait_for(r.content.readline(), max(0.01, end - time.monotonic()))
                except TimeoutError:
                    break
                if line.startswith(b"data: "):
                    texts.append(json.loads(line[6:])["text"])
    return texts


async def _present(ip: str, text: str, q: str = "quokkanet") -> bool:
    return any(text in t for t in await api_search(ip, q))


async def _absent(ip: str, text: str) -> bool:
    return not any(text in t for t in await api_search(ip, "quokkanet"))


async def _count(ip: str, text: str, n: int) -> bool:
    return sum(text in t for t in await api_search(ip, "quokkanet")) == n


def forged(item_id: str, title: str, consent: bool, sign: bool = True, flag_after: bool = False) -> str:
    """A firehose push of rogue.beta.test (signed with its published key unless `sign` is False)."""
    e = ET.fromstring(f"<entry xmlns='http://www.w3.org/2005/Atom'><title>{title}</title>"
                      "<author><uri>xmpp:ann@rogue.beta.test</uri></author></entry>")
    if consent:
        ET.SubElement(e, "{urn:xmppblog:0}discoverable")
    if sign:
        sig = ET.SubElement(e, "{urn:xmppblog:0}signature", {"key": "k1", "algorithm": "ed25519"})
        sig.text = base64.b64encode(ROGUE_KEY.sign(canonical(e))).decode()
    if flag_after:  # a relay adds a consent that was not given
        e.insert(1, ET.Element("{urn:xmppblog:0}discoverable"))
    return ("<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmppblog:firehose:0'>"
            f"<item id='{item_id}'>{ET.tostring(e, encoding='unicode')}</item></items></event>")


async def test_forged_firehose_entries_are_dropped_and_counted(net, aggregator, rogue):
    gamma = net["gamma"]
    await asyncio.to_thread(aggregator.wait_log, "aggregator: following the firehose of rogue.beta.test", 60)
    for item_id, title, kw in (("ann/1", "zorbleflux no consent", {"consent": False}),
                               ("ann/2", "zorbleflux consent added by a relay", {"consent": False, "flag_after": True}),
                               ("ann/3", "zorbleflux unsigned", {"consent": True, "sign": False}),
                               ("ann/4", "zorbleflux signed and consented", {"consent": True})):
        rogue.push("rogue.beta.test", forged(item_id, title, **kw), to="blog.gamma.test")
    await eventually(lambda: _present(gamma.ip, "zorbleflux signed and consented", "zorbleflux"))
    for item_id, reason in (("ann/1", "no-consent"), ("ann/2", "bad-signature"), ("ann/3", "missing-signature")):
        # counted by spamguard with this line (xmppblog stats: by reason and source)
        await asyncio.to_thread(aggregator.wait_log, "item dropped: origin=rogue.beta.test "
                                f"node=urn:xmppblog:firehose:0 item={item_id} reason={reason}", 10)
    assert [t for t in await api_search(gamma.ip, "zorbleflux")] == ["zorbleflux signed and consented"]
