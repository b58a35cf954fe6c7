# SPDX-License-Identifier: AGPL-3.0-or-later
"""The Server-Sent Events stream GET /api/stream (issue #17) with 1 and with 1,000 clients, in
the same run: delivery latency, events lost, the server's CPU per event per client, and
resuming with Last-Event-ID.

The server is this process: the real core (composition root) over a temp SQLite file,
HttpApi with StreamHub(core.stream) (its defaults: a read at once on each local commit,
at most one per MIN_GAP_SECONDS, else every POLL_SECONDS) and `on_commit(hub.wake)`, as
app.py wires them, served by aiohttp on a real socket on 127.0.0.1. The clients are a
child process (`--child URL`, driven by JSON lines on its stdin): aiohttp ClientSession
streams that split the bytes into events and stamp each with time.monotonic() (one clock
for both processes) when its last chunk is read. So the server's CPU
(time.process_time(): its event loop, aiosqlite's thread, the publisher) is measured
alone; the clients' CPU is reported apart. On 2 shared cores the clients' own work shows
in the latency of the 1,000-client phase.

Posts are alice's, on her public blog, with her consent (`discoverable`: the stream carries
consented posts only). Phases, in order:

1. a keeper client connects and PREFILL posts are published (default 2,000, the hub's
   RING): from then on the ring is full, as on a server that has run for a while;
2. N=1 (the keeper alone): P posts at RATE/s (default 200 at 20/s), then N=CLIENTS
   (the keeper and CLIENTS-1 more): the same. Latency: from the return of
   core.pubsub.publish to each client's receipt of the event; lost: (client, post) pairs
   never received within 60 s of the last post. Server CPU from the first publish to the
   last receipt, per event per client, raw and marginal ((CPU at N - CPU at 1) /
   (P x (N-1)): the publisher's own cost cancels); then the N clients again at SLOW_RATE/s
   (default 100 posts at 5/s), a quarter of the load;
3. a wake-up probe (keeper alone): pairs of posts 30 ms apart, 1.5 s between pairs:
   the latency of the first and of the second of each pair;
4. resume: a client reads one post, disconnects, MISSED posts (default 100) are published,
   it reconnects with Last-Event-ID and must get exactly those, in order, then a sentinel
   post published after it reconnected: with the hub running (the ring), beyond the ring
   (RING + 500 missed: database pages, then the ring) and with the hub stopped (no client
   was connected: it reads from the database).

    .venv/bin/python -m bench.stream_fanout [--clients 1000] [--posts 200] [--rate 20]
                                            [--slow-rate 5] [--slow-posts 100] [--prefill 2000]
                                            [--missed 100] [--profile TOP]
                                            [--json out.json]

Prints one JSON line per result, then a table and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import re
import resource
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.common import ROOT, pct
from tests.support.core import test_core
from xmppblog.app import SystemClock
from xmppblog.core.model import NS_MICROBLOG, Actor, NodeRef
from xmppblog.core.pubsub import Limits
from xmppblog.http.server import HttpApi
from xmppblog.http.stream import HEARTBEAT_SECONDS, MIN_GAP_SECONDS, POLL_SECONDS, RING, StreamHub, StreamLimits
from xmppblog.pubsub.xep_0277 import parse_entry
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

ALICE = Actor("alice@example.org")
BLOG = NodeRef("alice@blog.example.org", NS_MICROBLOG)
TEXT = ("Federated microblogging over XMPP: each post is an Atom entry on a PubSub node, "
        "followed from any IM client. #xmpp #streaming post {n} with a few more words to read")
ITEM_ID = re.compile(rb'\ndata: \{"id":"([^"]+)"')
CURSOR = re.compile(rb"(?:^|\n)id: (\S+)")
DELIVERY_TIMEOUT = 60.0


def draft(n: int):  # type: ignore[no-untyped-def]
    xml = (f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{TEXT.format(n=n)}</title>"
           f"<content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'><p>{TEXT.format(n=n)}</p>"
           "<p>A second paragraph, as clients send.</p></div></content></entry></item>")
    return parse_entry(ET.fromstring(xml), 65536)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


async def sse(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str, float]]:
    """(cursor, item id, receipt time) of each event of an open stream; ('', '', t) for a comment."""
    buf = b""
    async for chunk in resp.content.iter_any():
        t = time.monotonic()
        buf += chunk
        *events, buf = buf.split(b"\n\n")
        for ev in events:
            if ev.startswith(b":"):
                yield "", "", t
                continue
            m, c = ITEM_ID.search(ev), CURSOR.search(ev)
            yield (c.group(1).decode() if c else "?"), (m.group(1).decode() if m else "?"), t


# ---------------------------------------------------------------- the clients (child process)

class Client:
    def __init__(self) -> None:
        self.got: dict[str, float] = {}   # item id -> first receipt
        self.dups = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    async def run(self, session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                async for _, item_id, t in sse(resp):
                    if not item_id:
                        if not self.ready.done():
                            self.ready.set_result(True)
                    elif item_id in self.got:
                        self.dups += 1
                    else:
                        self.got[item_id] = t
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a failed client
            if not self.ready.done():
                self.ready.set_exception(exc)


async def child(url: str) -> None:
    raise_nofile()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=60)
    groups: dict[str, list[Client]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        while line := await stdin.readline():
            cmd = json.loads(line)
            reply: dict = {"cpu_s": time.process_time()}
            if cmd["cmd"] == "open":
                t0, failed = time.monotonic(), 0
                group = groups.setdefault(cmd["group"], [])
                for start in range(0, cmd["n"], 50):  # 50 at a time: under the listen backlog
                    batch = [Client() for _ in range(min(50, cmd["n"] - start))]
                    for c in batch:
                        c.task = asyncio.ensure_future(c.run(session, url))
                    for c in batch:
                        try:
                            await asyncio.wait_for(asyncio.shield(c.ready), 60)
                            group.append(c)
                        except Exception:  # noqa: BLE001
                            failed += 1
                reply.update(opened=len(group), failed=failed, seconds=round(time.monotonic() - t0, 2))
            elif cmd["cmd"] == "reset":
                for c in (c for g in groups.values() for c in g):
                    c.got.clear()
                    c.dups = 0
            elif cmd["cmd"] == "collect":
                reply.update(await collect_when_done([c for g in cmd["groups"] for c in groups[g]],
                                                     cmd["published"]))
            elif cmd["cmd"] == "close":
                for c in groups.pop(cmd["group"], []):
                    assert c.task is not None
                    c.task.cancel()
                    await asyncio.gather(c.task, return_exceptions=True)
            reply["cpu_s"] = round(time.process_time() - reply["cpu_s"], 3)
            reply["cpu_total_s"] = round(time.process_time(), 3)
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


async def collect_when_done(clients: list[Client], published: dict[str, float]) -> dict:
    """Wait until every client has every published post (or DELIVERY_TIMEOUT after the last
    publish), then the latencies."""
    deadline = max(published.values(), default=time.monotonic()) + DELIVERY_TIMEOUT
    while time.monotonic() < deadline and not all(p in c.got for c in clients for p in published):
        await asyncio.sleep(0.01)
    return collect(clients, published)


def collect(clients: list[Client], published: dict[str, float]) -> dict:
    lat: list[float] = []
    last: list[float] = []   # per post: until the last client had it
    lost = 0
    for p, t in published.items():
        got = [c.got[p] - t for c in clients if p in c.got]
        lost += len(clients) - len(got)
        lat += got
        if got:
            last.append(max(got))
    extra = sum(1 for c in clients for p in c.got if p not in published)
    done = max((c.got[p] for c in clients for p in published if p in c.got), default=0.0)
    return {"clients": len(clients), "events": len(lat), "lost": lost, "duplicates": sum(c.dups for c in clients),
            "unexpected": extra, "last_receipt": done,
            "latency_ms": {"p50": ms(pct(lat, 50)), "p99": ms(pct(lat, 99)), "max": ms(max(lat, default=0.0))},
            "all_clients_ms": {"p50": ms(pct(last, 50)), "p99": ms(pct(last, 99)), "max": ms(max(last, default=0.0))}}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# ---------------------------------------------------------------- the server (this process)

class Clients:
    """The child process, one command at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, **cmd: object) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the client process ended (exit {await self.proc.wait()})")
        return json.loads(line)


class Publisher:
    def __init__(self, core) -> None:  # type: ignore[no-untyped-def]
        self.core = core
        self.n = 0

    async def one(self) -> tuple[str, float]:
        self.n += 1
        item_id = await self.core.pubsub.publish(ALICE, BLOG, None, draft(self.n))
        return item_id, time.monotonic()

    async def paced(self, count: int, rate: float) -> tuple[dict[str, float], float]:
        """`count` posts at `rate` per second (0: at once); and the largest lateness against the schedule."""
        out: dict[str, float] = {}
        late = 0.0
        t0 = time.monotonic()
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                late = max(late, -delay)
            item_id, t = await self.one()
            out[item_id] = t
        return out, late


async def fanout_phase(clients: Clients, pub: Publisher, groups: list[str], n: int, posts: int, rate: float,
                       profiler: cProfile.Profile | None = None) -> dict:
    await asyncio.sleep(1.0)
    before = await clients.ask(cmd="reset")
    if profiler:
        profiler.enable()
    c0, w0 = time.process_time(), time.monotonic()
    published, late = await pub.paced(posts, rate)
    cpu_pub = time.process_time() - c0
    got = await clients.ask(cmd="collect", groups=groups, published=published)
    if profiler:
        profiler.disable()
    # the server's CPU until the last receipt (the wait after it is mostly idle, but counted up to the reply)
    cpu = time.process_time() - c0
    events = posts * n
    return {"result": "fanout", "clients": n, "posts": posts, "rate": rate,
            "publish_seconds": round(max(published.values()) - w0, 2), "publish_late_max_ms": ms(late),
            "events_expected": events, "events": got["events"], "lost": got["lost"],
            "duplicates": got["duplicates"], "unexpected": got["unexpected"],
            "latency_ms": got["latency_ms"], "all_clients_ms": got["all_clients_ms"],
            "server_cpu_s": round(cpu, 3), "server_cpu_while_publishing_s": round(cpu_pub, 3),
            "server_cpu_us_per_event_per_client": round(cpu / events * 1e6, 1),
            "client_cpu_s": round(got["cpu_total_s"] - before["cpu_total_s"], 3)}


async def wake_probe(clients: Clients, pub: Publisher, pairs: int) -> dict:
    """Two posts 30 ms apart, then quiet: is the second read at once (within MIN_GAP_SECONDS)?"""
    await clients.ask(cmd="reset")
    await asyncio.sleep(1.5)
    first: dict[str, float] = {}
    second: dict[str, float] = {}
    for _ in range(pairs):
        item_id, t = await pub.one()
        first[item_id] = t
        await asyncio.sleep(0.03)
        item_id, t = await pub.one()
        second[item_id] = t
        await asyncio.sleep(1.5)
    a = await clients.ask(cmd="collect", groups=["keeper"], published=first)
    b = await clients.ask(cmd="collect", groups=["keeper"], published=second)
    return {"result": "wake_probe", "pairs": pairs, "gap_ms": 30, "min_gap_s": MIN_GAP_SECONDS,
            "poll_s": POLL_SECONDS, "first_latency_ms": a["latency_ms"], "second_latency_ms": b["latency_ms"],
            "lost": a["lost"] + b["lost"]}


async def resume(session: aiohttp.ClientSession, url: str, pub: Publisher, hub: StreamHub, missed: int,
                 label: str, cold: bool) -> dict:
    """Read one post, disconnect, miss `missed`, reconnect with Last-Event-ID: exactly those, then a sentinel."""
    async with session.get(url) as resp:
        events = sse(resp)
        async for _ in events:  # the opening comment: the stream's position is set
            break
        anchor, _ = await pub.one()
        cursor = ""
        async with asyncio.timeout(10):
            async for cur, item_id, _ in events:
                if item_id == anchor:
                    cursor = cur
                    break
    if cold:  # the hub's reader stops once no client is left: a closed stream's handler sees that
        # it is closed when it next writes (a post or the heartbeat), then the reader within a poll
        t0 = time.monotonic()
        async with asyncio.timeout(HEARTBEAT_SECONDS + 5):
            while hub.clients:
                await asyncio.sleep(0.05)
        noticed = time.monotonic() - t0
        await asyncio.sleep(POLL_SECONDS + MIN_GAP_SECONDS + 0.5)
    expected = [(await pub.one())[0] for _ in range(missed)]
    got: list[str] = []
    t0 = time.monotonic()
    async with session.get(url, headers={"Last-Event-ID": cursor}) as resp:
        events = sse(resp)
        sentinel = ""
        async with asyncio.timeout(60):
            async for _, item_id, _ in events:
                if not item_id:
                    if not sentinel:
                        sentinel = (await pub.one())[0]  # published once the stream is open
                    continue
                if item_id == sentinel:
                    break
                got.append(item_id)
    exact = got == expected
    return {"result": "resume", "case": label, "missed": missed, "received": len(got), "exact": exact,
            "missing": len(set(expected) - set(got)), "duplicates": len(got) - len(set(got)),
            "unexpected": len(set(got) - set(expected)), "in_order": [g for g in got if g in set(expected)] == expected,
            "seconds": round(time.monotonic() - t0, 2),
            **({"seconds_until_the_hub_saw_no_client": round(noticed, 2)} if cold else {})}


async def server(args: argparse.Namespace) -> dict:
    raise_nofile()
    results: list[dict] = []

    def emit(r: dict) -> None:
        results.append(r)
        print(json.dumps(r), flush=True)

    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite+aiosqlite:///{d}/bench.db"
        await migrate.upgrade(url)
        engine = create_engine(url)
        clock = SystemClock()
        core = test_core(uow_factory(sessionmaker(engine), clock), engine, url, clock,  # type: ignore[arg-type]
                         Limits(max_items_per_node=1_000_000))
        hub = StreamHub(core.stream)
        core.transactions.on_commit(hub.wake)

        async def stats() -> dict:
            return {}

        api = HttpApi(core.pubsub, core.social, core.search, "http://blog.example.org", stats, stream=hub,
                      stream_limits=StreamLimits(total=5000, per_client=5000))
        runner = web.AppRunner(api.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        stream_url = f"http://127.0.0.1:{port}/api/stream"
        await core.social.discoverable(ALICE, True)  # the stream carries consented posts only
        pub = Publisher(core)
        await pub.one()  # the blog exists before the first client
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.stream_fanout", "--child", stream_url, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2 ** 24)
        clients = Clients(proc)
        try:
            opened = await clients.ask(cmd="open", group="keeper", n=1)
            assert opened["opened"] == 1, opened
            t0 = time.monotonic()
            await pub.paced(args.prefill, 0)
            while hub.position < (await core.stream.last_position()):
                await asyncio.sleep(0.05)
            emit({"result": "prefill", "posts": args.prefill, "ring": RING, "ring_held": len(hub.recent),
                  "seconds": round(time.monotonic() - t0, 1)})

            one = await fanout_phase(clients, pub, ["keeper"], 1, args.posts, args.rate)
            emit(one)
            opened = await clients.ask(cmd="open", group="many", n=args.clients - 1)
            emit({"result": "connect", "clients": opened["opened"] + 1, "failed": opened["failed"],
                  "seconds": opened["seconds"], "hub_clients": hub.clients})
            profiler = cProfile.Profile() if args.profile else None
            many = await fanout_phase(clients, pub, ["keeper", "many"], opened["opened"] + 1, args.posts,
                                      args.rate, profiler)
            emit(many)
            slow = None
            if args.slow_rate:  # the same clients at a rate the server keeps up with
                slow = await fanout_phase(clients, pub, ["keeper", "many"], many["clients"], args.slow_posts,
                                          args.slow_rate)
                emit(slow)
            await clients.ask(cmd="close", group="many")
            emit(await wake_probe(clients, pub, args.pairs))

            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as session:
                emit(await resume(session, stream_url, pub, hub, args.missed, "hub running (ring)", cold=False))
                emit(await resume(session, stream_url, pub, hub, RING + 500, "hub running, beyond the ring",
                                  cold=False))
                await clients.ask(cmd="close", group="keeper")
                emit(await resume(session, stream_url, pub, hub, args.missed, "hub stopped (database)", cold=True))
            end = await clients.ask(cmd="close", group="none")
            n = many["clients"]
            marginal = (many["server_cpu_s"] - one["server_cpu_s"]) / (args.posts * (n - 1))
            summary = {"result": "summary", "clients": n,
                       "latency_ratio_p50": round(many["latency_ms"]["p50"] / one["latency_ms"]["p50"], 2),
                       "latency_ratio_p99": round(many["latency_ms"]["p99"] / one["latency_ms"]["p99"], 2),
                       "latency_ratio_max": round(many["latency_ms"]["max"] / one["latency_ms"]["max"], 2),
                       "server_cpu_ratio": round(many["server_cpu_s"] / one["server_cpu_s"], 2),
                       "server_cpu_us_per_event_per_client_marginal": round(marginal * 1e6, 1),
                       "client_process_cpu_total_s": end["cpu_total_s"]}
            emit(summary)
        finally:
            if proc.returncode is None:
                assert proc.stdin is not None
                proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            await runner.cleanup()
            core.search.close()
            await engine.dispose()

    print(f"\nGET /api/stream over SQLite: {args.posts} posts at {args.rate}/s per phase, ring of {RING} "
          f"full ({args.prefill} posts before); latency from publish() returning to receipt by the client")
    print(f"{'clients':>7} {'rate':>5} {'events':>8} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'last-client p50':>16} {'server CPU s':>13} {'µs/event/client':>16} {'client CPU s':>13}")
    for r in (one, many, *([slow] if slow else [])):
        print(f"{r['clients']:>7} {r['rate']:>5} {r['events']:>8} {r['lost']:>5} {r['latency_ms']['p50']:>8} "
              f"{r['latency_ms']['p99']:>8} {r['latency_ms']['max']:>8} {r['all_clients_ms']['p50']:>16} "
              f"{r['server_cpu_s']:>13} {r['server_cpu_us_per_event_per_client']:>16} {r['client_cpu_s']:>13}")
    print(f"{n} vs 1 client: latency p50 x{summary['latency_ratio_p50']}, p99 x{summary['latency_ratio_p99']}, "
          f"max x{summary['latency_ratio_max']}; server CPU x{summary['server_cpu_ratio']}; marginal "
          f"{summary['server_cpu_us_per_event_per_client_marginal']} µs of server CPU per event per extra client")
    probe = next(r for r in results if r["result"] == "wake_probe")
    print(f"wake-up probe ({probe['pairs']} pairs of posts 30 ms apart): first p50 "
          f"{probe['first_latency_ms']['p50']} ms, second p50 {probe['second_latency_ms']['p50']} ms "
          f"(max {probe['second_latency_ms']['max']} ms)")
    for r in results:
        if r["result"] == "resume":
            print(f"resume, {r['case']}: missed {r['missed']}, received {r['received']}, exact={r['exact']} "
                  f"(missing {r['missing']}, duplicates {r['duplicates']}, unexpected {r['unexpected']}) "
                  f"in {r['seconds']} s")
    if profiler:
        print(f"\ncProfile of the server's event loop thread during the {n}-client phase (inflates its CPU):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(args.profile)
    return {"args": vars(args), "results": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--posts", type=int, default=200, help="posts per phase")
    ap.add_argument("--rate", type=float, default=20.0, help="posts per second")
    ap.add_argument("--slow-rate", type=float, default=5.0,
                    help="then the N clients again at this rate (0: not); --slow-posts posts")
    ap.add_argument("--slow-posts", type=int, default=100)
    ap.add_argument("--prefill", type=int, default=RING, help="posts before the phases (fills the ring)")
    ap.add_argument("--missed", type=int, default=100, help="posts a resuming client missed")
    ap.add_argument("--pairs", type=int, default=10, help="pairs of posts of the wake-up probe")
    ap.add_argument("--profile", type=int, default=0, metavar="TOP",
                    help="cProfile the server during the N-client phase; print the TOP functions")
    ap.add_argument("--json")
    ap.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        asyncio.run(child(a.child))
    else:
        out = asyncio.run(server(a))
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=1))
