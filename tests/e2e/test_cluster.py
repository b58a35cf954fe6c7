# SPDX-License-Identifier: AGPL-3.0-or-later
"""Scale-out (issue #16): xmppblog workers serve one component domain behind ejabberd's
domain_balancing (type destination, 2 fixed slots) with one PostgreSQL; there are more
connections than slots, and spare ones wait for a slot. Publishing, its answer, XEP-0060 and chat
delivery work whichever worker holds a blog's slot or its outbox shard; a worker killed
with SIGKILL is taken over within 30 s; one stopped with SIGTERM leaves within 20 s and
loses nothing. On a two-node ejabberd cluster, workers on either node serve users of
both, and when a node stops, connections on the other take its workers' slots."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import aiohttp
import asyncpg
import pytest
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET

from ..support import ejabberd as ej
from ..support import ports
from ..support.clients import Client, connect
from ..support.component import Component
from ..support.postgres import fresh_database
from .conftest import ETA_IPS, ZETA_IP

DOMAIN = "zeta.test"
SERVICE = f"blog.{DOMAIN}"
SLOTS = 2
NODE = "urn:xmpp:microblog:0"
POSTERS = [f"p{i}" for i in range(1, 7)]
SEQ = re.compile(r"seq (p\d+) (\d+)\b")


@pytest.fixture(scope="module")
def zeta(net, tmp_path_factory):
    """ejabberd for zeta.test, federating with the suite's Prosody servers."""
    ej.require()
    hosts = "".join(f"{s.ip} {s.domain} {s.component}\n" for s in net.servers.values())
    server = ej.Ejabberd(DOMAIN, ZETA_IP, tmp_path_factory.mktemp("zeta"), [*POSTERS, "fan", "chat"],
                         balancing=("destination", SLOTS), extra_hosts=hosts)
    server.start()
    yield server
    server.stop()


class Workers:
    """The cluster's worker processes, all on one config but their worker_id and HTTP port."""

    def __init__(self, zeta: ej.Ejabberd, base, db_url: str) -> None:
        self.zeta, self.base, self.db_url = zeta, base, db_url
        self.procs: dict[str, Component] = {}

    def start(self, name: str, connections: int = 2, node: ej.Ejabberd | None = None) -> Component:
        """Worker `name`, connected to `node` (default: the first node) of the ejabberd cluster."""
        node = node or self.zeta
        comp = Component(node, self.base / name, db_url=self.db_url, extra=(
            f'[cluster]\nenabled = true\nworker_id = "{name}"\nheartbeat_seconds = 1.0\nlease_seconds = 4.0\n'))
        comp.for_load()
        # every worker of this machine on the one HTTP port (SO_REUSEPORT)
        comp.config.write_text(comp.config.read_text().replace(
            "reconnect_max_delay = 2.0\n", f"reconnect_max_delay = 2.0\nconnections = {connections}\n").replace(
            'listen = ""', f'listen = "{node.ip}:{ports.HTTP}"'))
        comp.start(wait=False)
        self.procs[name] = comp
        return comp

    def stop_all(self) -> None:
        for comp in self.procs.values():
            comp.stop()

    async def leases(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.db_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await conn.fetch("SELECT owner, count(*) AS n FROM cluster_leases WHERE owner IS NOT NULL "
                                    "AND until > now() GROUP BY owner")
        except asyncpg.UndefinedTableError:
            return {}  # not migrated yet
        finally:
            await conn.close()
        return {r["owner"]: r["n"] for r in rows}

    async def slots_held(self, n: int, timeout: float = 40.0) -> None:
        """Wait until the workers' connections took `n` slots (each says so when it finds one)."""
        end = time.monotonic() + timeout
        while sum(c.log_text(True).count("holds a slot") for c in self.procs.values()) < n:
            if time.monotonic() > end:
                raise AssertionError(f"fewer than {n} slots were taken")
            await asyncio.sleep(0.2)

    async def settled(self, among: set[str], timeout: float = 40.0, exactly: bool = False) -> dict[str, int]:
        """Wait until workers of `among` that can send (hold a slot) hold all 64 outbox shards,
        each its share (`exactly`: every one of `among` holds some)."""
        end = time.monotonic() + timeout
        leases: dict[str, int] = {}
        while time.monotonic() < end:
            leases = await self.leases()
            if (leases and (set(leases) == among if exactly else set(leases) <= among) and sum(leases.values()) == 64
                    and max(leases.values()) <= -(-64 // len(leases))):
                return leases
            await asyncio.sleep(0.5)
        raise AssertionError(f"shards never settled on {among}: {leases}")


@pytest.fixture(scope="module")
def workers(zeta, pg_server, tmp_path_factory):
    w = Workers(zeta, tmp_path_factory.mktemp("workers"), fresh_database(pg_server))
    yield w
    w.stop_all()
    for name, comp in w.procs.items():
        assert "Traceback" not in comp.log_text(), f"{name} logged a traceback:\n{comp.log_text()[-4000:]}"


def entry(text: str) -> ET.Element:
    e = ET.Element("{http://www.w3.org/2005/Atom}entry")
    ET.SubElement(e, "{http://www.w3.org/2005/Atom}title").text = text
    return e


class Ledger:
    """What each poster got acknowledged, and what the fan received (per blog, in order)."""

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service
        self.acked: dict[str, list[int]] = {p: [] for p in POSTERS}
        self.got: dict[str, list[int]] = {p: [] for p in POSTERS}

    def watch(self, fan: Client) -> None:
        def on_event(msg) -> None:
            for item in msg.xml.iter("{http://jabber.org/protocol/pubsub#event}item"):
                m = SEQ.search(ET.tostring(item, encoding="unicode"))
                if m:
                    self.got[m.group(1)].append(int(m.group(2)))
        fan.add_event_handler("pubsub_publish", on_event)

    async def publish(self, poster: Client, who: str, seq: int, timeout: float = 5.0) -> bool:
        try:
            await poster.pubsub.publish(f"{who}@{self.service}", NODE, id=f"s{seq}", payload=entry(f"seq {who} {seq}"),
                                        timeout=timeout)
        except (IqError, IqTimeout):
            return False
        self.acked[who].append(seq)
        return True

    async def delivered(self, timeout: float = 20.0) -> None:
        """Every acknowledged post reached the fan."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(set(self.acked[p]) <= set(self.got[p]) for p in POSTERS):
                return
            await asyncio.sleep(0.2)
        missing = {p: sorted(set(self.acked[p]) - set(self.got[p])) for p in POSTERS}
        raise AssertionError(f"acknowledged posts never delivered: {missing}")

    def duplicates(self) -> int:
        return sum(len(v) - len(set(v)) for v in self.got.values())


async def publish_round(ledger: Ledger, posters: dict[str, Client], seq: int, tries: int = 15) -> None:
    """Every poster publishes post `seq`, retrying (new attempts of the same post) while a slot moves."""
    for _ in range(tries):
        todo = [p for p in POSTERS if seq not in ledger.acked[p]]
        if not todo:
            return
        await asyncio.gather(*(ledger.publish(posters[p], p, seq, timeout=3) for p in todo))
    raise AssertionError(f"post {seq} never acknowledged: {ledger.acked}")


async def test_workers_share_one_domain_and_survive_kill_and_stop(zeta, workers, component, clients):
    # w1 and w2 take the two slots (one connection each); w3 (two connections) waits for one
    workers.start("w1", connections=1)
    await workers.slots_held(1)
    workers.start("w2", connections=1)
    await workers.slots_held(2)
    workers.start("w3", connections=2)
    leases = await workers.settled({"w1", "w2"}, exactly=True)  # both slot holders send, the spare does not

    posters = {p: await connect(f"{p}@{DOMAIN}", ZETA_IP) for p in POSTERS}
    fan = await connect(f"fan@{DOMAIN}", ZETA_IP)
    chat = await connect(f"chat@{DOMAIN}", ZETA_IP)
    ledger = Ledger()
    ledger.watch(fan)
    try:
        # every blog is made and subscribed to, wherever its slot is
        for p, c in posters.items():
            assert await ledger.publish(c, p, 0, timeout=10), f"{p}'s first post was not answered"
            ledger.acked[p].clear()  # made before anyone followed
            r = await fan.pubsub.subscribe(f"{p}@{SERVICE}", NODE)
            assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
        async with aiohttp.ClientSession() as http:  # each worker serves HTTP on the shared port
            for _ in range(6):
                async with http.get(f"http://{ZETA_IP}:{ports.HTTP}/api/users/p1/posts") as r:
                    assert r.status == 200 and (await r.json())["posts"], r.status
        served = {w for w in ("w1", "w2") if "published: service=" in workers.procs[w].log_text(True)}
        assert served == {"w1", "w2"}, "the blogs are spread over both slots (both workers publish)"
        # follow by chat (the service JID's slot); p1 then posts by chat too: planned on the
        # service JID's worker, for a follower whose presence reached the worker of p1's blog
        assert await chat.say(f"follow p1@{DOMAIN}", to=SERVICE) == f"Now following p1@{DOMAIN}"
        await asyncio.sleep(1)
        assert (await posters["p1"].say("post seq p1 50 by chat", to=SERVICE)).startswith("Posted")
        said = await chat.inbox.wait(lambda m: m["type"] == "chat" and "seq p1 50" in (m["body"] or ""), 15)
        assert said is not None, "the chat follower got p1's chat post (presence shared between workers)"

        # federation out and in, from and to whichever worker: an alpha.test user (Prosody, with
        # its own xmppblog) follows p2 of the cluster, and p3 follows her
        zora = await clients("zora")
        assert await zora.say(f"follow p2@{DOMAIN}") == f"Now following p2@{DOMAIN}"
        assert (await posters["p2"].say("post seq p2 60 to alpha", to=SERVICE)).startswith("Posted")
        got = await zora.inbox.wait(lambda m: "seq p2 60" in (m["body"] or ""), 20)
        assert got is not None and got["from"].bare == f"p2\\40{DOMAIN}@blog.alpha.test", "out of the cluster"
        assert (await zora.say("post hello from alpha")).startswith("Posted")
        assert await posters["p3"].say("follow zora@alpha.test", to=SERVICE) == "Now following zora@alpha.test"
        # chat copies go to followers known to be online: p3's presence reaches the cluster once
        # its client approved the blog's presence request, a moment after the follow
        got = None
        for attempt in range(5):
            assert (await zora.say(f"post alpha to zeta {attempt}")).startswith("Posted")
            got = await posters["p3"].inbox.wait(lambda m: "alpha to zeta" in (m["body"] or ""), 4)
            if got is not None:
                break
        assert got is not None and got["from"].bare == f"zora\\40alpha.test@{SERVICE}", "into the cluster"
        await zora.say(f"unfollow p2@{DOMAIN}")

        # steady state: exactly once, in order per blog
        for seq in range(1, 6):
            assert all(await asyncio.gather(*(ledger.publish(c, p, seq) for p, c in posters.items())))
        await ledger.delivered()
        assert ledger.duplicates() == 0, ledger.got
        for p in POSTERS:
            assert [s for s in ledger.got[p] if s < 50] == [1, 2, 3, 4, 5], f"{p}: {ledger.got[p]}"

        # kill -9 the worker that sends for most shards: its slot goes to the spare's connection
        # and its shards to the others; within 30 s every blog publishes and delivers again
        victim = max(leases, key=leases.__getitem__)
        killed = time.monotonic()
        workers.procs[victim].kill()
        await publish_round(ledger, posters, 100, tries=12)
        assert time.monotonic() - killed < 30, "publishing back within 30 s of a kill -9"
        await ledger.delivered(timeout=30)
        assert time.monotonic() - killed < 45
        # the spare took the dead worker's slot, and with it a share of the outbox
        await workers.settled({"w1", "w2", "w3"} - {victim}, exactly=True)
        assert ledger.duplicates() <= 12, f"duplicates beyond the killed worker's in-flight batch: {ledger.got}"

        # a worker joins under load, then one that holds a slot leaves on SIGTERM: it exits
        # within 20 s, the newcomer takes its slot, nothing is lost or repeated
        workers.start("w4", connections=1)
        before = ledger.duplicates()
        stopped = next(w for w in ("w1", "w2") if w != victim)
        for seq in range(101, 104):
            await publish_round(ledger, posters, seq)
        started = time.monotonic()
        assert workers.procs[stopped].stop(signal.SIGTERM, timeout=25) == 0
        assert time.monotonic() - started < 20, "a SIGTERM'd worker exits within 20 s"
        for seq in range(200, 204):
            await publish_round(ledger, posters, seq)
        leases = await workers.settled({"w3", "w4"}, exactly=True)
        await ledger.delivered(timeout=30)
        assert ledger.duplicates() == before, "no duplicate after a clean stop"
        for p in POSTERS:
            got = [s for s in ledger.got[p] if s >= 200]
            assert got == [200, 201, 202, 203], f"{p}: order and completeness after the moves: {got}"
    finally:
        for c in [*posters.values(), fan, chat]:
            c.disconnect()


async def test_on_prosody_one_worker_serves_and_says_why_the_others_cannot(epsilon, pg_server, tmp_path):
    """Prosody accepts one connection per component: the first worker serves (and warns that
    it is the only one), a second one is refused with `conflict` and says what to use instead."""
    db = fresh_database(pg_server)
    first = Component(epsilon, tmp_path / "first", db_url=db, extra='[cluster]\nenabled = true\nworker_id = "a"\n')
    second = Component(epsilon, tmp_path / "second", db_url=db, extra='[cluster]\nenabled = true\nworker_id = "b"\n')
    for comp in (first, second):
        comp.for_load()
    try:
        first.start()
        await asyncio.to_thread(first.wait_log, "is Prosody, which accepts one connection per component", 20)
        second.start(wait=False)
        await asyncio.to_thread(second.wait_log, "Prosody accepts one connection per component", 20)
        assert "holds a slot" in first.log_text(True) and "holds a slot" not in second.log_text(True)
    finally:
        second.stop()
        assert first.stop() == 0


ETA = "eta.test"


@pytest.fixture(scope="module")
def eta(tmp_path_factory):
    """A two-node ejabberd cluster for eta.test (the second node joins the first: same
    accounts, one routing table), both with the same domain_balancing."""
    ej.require()
    first = ej.Ejabberd(ETA, ETA_IPS[0], tmp_path_factory.mktemp("eta1"), [*POSTERS, "fan", "far"],
                        balancing=("destination", SLOTS))
    first.start()
    second = ej.Ejabberd(ETA, ETA_IPS[1], tmp_path_factory.mktemp("eta2"), balancing=("destination", SLOTS),
                         join=first)
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


async def test_workers_on_two_ejabberd_nodes_serve_one_domain_and_survive_a_node(eta, pg_server, tmp_path):
    first, second = eta
    service = f"blog.{ETA}"
    workers = Workers(first, tmp_path, fresh_database(pg_server))
    # one slot held from each node; then a spare on the second node
    workers.start("a", connections=1, node=first)
    await workers.slots_held(1)
    workers.start("b", connections=1, node=second)
    await workers.slots_held(2)
    workers.start("c", connections=2, node=second)
    await workers.settled({"a", "b"}, exactly=True)
    posters = {p: await connect(f"{p}@{ETA}", first.ip) for p in POSTERS}
    fan = await connect(f"fan@{ETA}", first.ip)
    far = await connect(f"far@{ETA}", second.ip)  # a user of the other node
    ledger = Ledger(service)
    ledger.watch(fan)
    far_got: list[str] = []
    far.add_event_handler("pubsub_publish", lambda msg: far_got.extend(
        m.group(0) for item in msg.xml.iter("{http://jabber.org/protocol/pubsub#event}item")
        for m in [SEQ.search(ET.tostring(item, encoding="unicode"))] if m))
    try:
        for p, c in posters.items():
            assert await ledger.publish(c, p, 0, timeout=10), f"{p}'s first post was not answered"
            ledger.acked[p].clear()
            for follower in (fan, far):
                r = await follower.pubsub.subscribe(f"{p}@{service}", NODE)
                assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
        served = {w for w in ("a", "b") if "published: service=" in workers.procs[w].log_text(True)}
        assert served == {"a", "b"}, "the blogs are spread over the workers of both nodes"
        await far.pubsub.publish(f"far@{service}", NODE, payload=entry("from the second node"), timeout=10)
        for seq in range(1, 4):
            await publish_round(ledger, posters, seq)
        await ledger.delivered()
        assert ledger.duplicates() == 0
        end = time.monotonic() + 20
        while len(far_got) < 3 * len(POSTERS) and time.monotonic() < end:
            await asyncio.sleep(0.2)
        assert sorted(far_got) == sorted(f"seq {p} {s}" for p in POSTERS for s in (1, 2, 3)), \
            "a subscriber on the other node got every post once"

        # kill -9 the first node's worker: the spare on the second node takes its slot
        killed = time.monotonic()
        workers.procs["a"].kill()
        await publish_round(ledger, posters, 10, tries=12)
        assert time.monotonic() - killed < 30, "publishing back within 30 s of a kill -9"
        await ledger.delivered(timeout=30)
        await workers.settled({"b", "c"}, exactly=True)

        # the second node stops: its workers' connections drop, ejabberd frees their slots
        # cluster-wide, and a spare on the first node takes them
        workers.start("d", connections=2, node=first)
        await asyncio.to_thread(workers.procs["d"].wait_log, "holds no slot", 30)
        far.disconnect()
        stopped = time.monotonic()
        second.stop()
        await publish_round(ledger, posters, 20, tries=12)
        assert time.monotonic() - stopped < 30, "publishing back within 30 s of losing a node"
        await workers.settled({"d"}, exactly=True)  # b and c live on, with nothing to serve
        for seq in range(21, 24):
            await publish_round(ledger, posters, seq)
        await ledger.delivered(timeout=30)
        assert ledger.duplicates() <= 12, ledger.got
        for p in POSTERS:
            got = [s for s in ledger.got[p] if s >= 21]
            assert got == [21, 22, 23], f"{p}: order and completeness after the node stopped: {got}"
    finally:
        for c in [*posters.values(), fan, far]:
            c.disconnect()
        workers.stop_all()
    for name, comp in workers.procs.items():
        assert "Traceback" not in comp.log_text(), f"{name} logged a traceback:\n{comp.log_text()[-4000:]}"
