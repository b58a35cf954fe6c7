# SPDX-License-Identifier: AGPL-3.0-or-later
"""What an aggregator spends per post of a source's firehose (issue #17): the real
federation/receive.py EntryPipeline.receive over the real core (composition root, temp
SQLite or a private PostgreSQL), which verifies each entry's Ed25519 signature, requires
its author's consent flag, sanitises it and stores and indexes it (RemoteFeeds.ingest).

Cases, measured in the same run, interleaved in rounds (the machine is shared):

* `firehose`: entries of `urn:xmppblog:firehose:0` at blog.source.example, each signed
  with a fixed Ed25519 key and carrying `{urn:xmppblog:0}discoverable` under the
  signature; the verifier checks them against the source's keys with real crypto (no
  network), as federation/verify.py would once the keys are fetched;
* `followed blog` (baseline): the same entries pushed to a followed remote blog node
  (ann@blog.source.example, urn:xmpp:microblog:0) with a verifier that reports them
  unsigned (Checked(False)): no signature verification, no consent rule.

each as pushes of 1 item and as pages of 50 items. CPU is time.process_time() of the
whole process (the event loop and aiosqlite's thread; with --db postgres, the server's
postmaster and backends are counted apart as `db`), over the posts ingested: posts/s per
core = posts / CPU seconds. Also measured: signature verification alone
(pubsub/signing.verify over the same parsed entries), as a share of a firehose post.

    .venv/bin/python -m bench.aggregator_ingest [--posts 2000] [--rounds 4] [--db sqlite|postgres]
                                                [--json out.json]

Prints one JSON line per case, then a table and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.common import maybe_postgres, tree_cpu
from tests.support.core import FakeClock, test_core
from tests.support.postgres import fresh_database
from xmppblog.core.model import NS_FIREHOSE, NS_MICROBLOG, Actor, NodeRef
from xmppblog.core.pubsub import Limits
from xmppblog.federation.receive import EntryPipeline
from xmppblog.federation.verify import Checked
from xmppblog.pubsub.signing import canonical, verify
from xmppblog.pubsub.xep_0277 import parse_entry
from xmppblog.spamguard.guard import Guard
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

SOURCE = NodeRef("blog.source.example", NS_FIREHOSE)
BLOG = NodeRef("ann@blog.source.example", NS_MICROBLOG)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
KEYS = {"k1": KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)}
A = "{http://www.w3.org/2005/Atom}"
TEXT = ("Federated microblogging over XMPP: each post is an Atom entry on a PubSub node, "
        "followed from any IM client. #xmpp #federation post {n} with a few more words to index")


def item(n: int) -> ET.Element:
    """A realistic signed firehose item: what a source's AtomCodec sends, consent under the signature."""
    entry = ET.fromstring(
        "<entry xmlns='http://www.w3.org/2005/Atom'>"
        f"<title type='text'>{TEXT.format(n=n)}</title>"
        "<content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'>"
        f"<p>{TEXT.format(n=n)}</p><p>A second paragraph, with <a href='https://example.net/x'>a link</a>.</p>"
        "</div></content>"
        f"<id>tag:blog.source.example,2026:ann/{n}</id>"
        "<published>2026-11-24T12:00:00Z</published><updated>2026-11-24T12:00:00Z</updated>"
        "<author><name>Ann</name><uri>xmpp:ann@source.example</uri></author>"
        f"<link rel='alternate' href='xmpp:ann@blog.source.example?;node=urn%3Axmpp%3Amicroblog%3A0;item={n}'/>"
        "</entry>")
    ET.SubElement(entry, "{urn:xmppblog:0}discoverable")
    sig = ET.SubElement(entry, "{urn:xmppblog:0}signature", {"key": "k1", "algorithm": "ed25519"})
    sig.text = base64.b64encode(KEY.sign(canonical(entry))).decode()
    el = ET.Element("item", {"id": f"ann/{n}"})
    el.append(entry)
    return el


class SourceKeys:
    """The source is an xmppblog server whose keys are KEYS (federation/verify.py's verdicts)."""

    async def check(self, origin, entries):  # type: ignore[no-untyped-def]
        return [Checked(p is None, p or "") for p in (verify(e, KEYS) for e in entries)], "source.example"


class Unsigned:
    """An origin that is not an xmppblog server: nothing verified (the followed-blog baseline)."""

    async def check(self, origin, entries):  # type: ignore[no-untyped-def]
        return [Checked(False) for _ in entries], None


async def consent(origin: str, node: str) -> bool:
    return True


async def main(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as d, maybe_postgres(args.db, Path(d)) as pg:
        url = fresh_database(pg.url) if pg else f"sqlite+aiosqlite:///{d}/bench.db"
        await migrate.upgrade(url)
        engine = create_engine(url)
        clock = FakeClock()
        total = (args.posts + 100) * 2  # never trimmed: every post is a new row
        core = test_core(uow_factory(sessionmaker(engine), clock), engine, url, clock,
                         Limits(max_items_per_node=total))
        await core.remote.follow_source(SOURCE, 1_000_000)
        await core.remote.follow(Actor("u@example.org"), "ann@source.example", BLOG)
        guard = Guard(consent, {"example.org"})
        pipes = {"firehose": (EntryPipeline(core.remote, SourceKeys(), guard, 65536), SOURCE),
                 "followed blog": (EntryPipeline(core.remote, Unsigned(), guard, 65536), BLOG)}
        batches = (1, 50)
        # each (case, batch) ingests its own posts: n in [base, base + posts)
        bases = {(c, b): i * (args.posts + 100) for i, (c, b) in enumerate((c, b) for c in pipes for b in batches)}
        made = {k: [item(n) for n in range(base, base + args.posts + 50)] for k, base in bases.items()}
        cpu = {k: 0.0 for k in made}
        db_cpu = {k: 0.0 for k in made}
        wall = {k: 0.0 for k in made}
        stored = {k: 0 for k in made}
        pgpid = pg.pid if pg else None
        # warm: 50 posts of each case, not counted
        for (case, batch), items in made.items():
            pipe, ref = pipes[case]
            for i in range(0, 50, batch):
                await pipe.receive(ref.service, ref.node, items[i:i + batch], [])
        per_round = args.posts // args.rounds
        for r in range(args.rounds):
            for (case, batch), items in made.items():
                pipe, ref = pipes[case]
                chunk = items[50 + r * per_round:50 + (r + 1) * per_round]
                d0, c0, w0 = tree_cpu(pgpid), time.process_time(), time.perf_counter()
                for i in range(0, len(chunk), batch):
                    got = await pipe.receive(ref.service, ref.node, chunk[i:i + batch], [])
                    stored[(case, batch)] += got.stored
                cpu[(case, batch)] += time.process_time() - c0
                wall[(case, batch)] += time.perf_counter() - w0
                db_cpu[(case, batch)] += tree_cpu(pgpid) - d0
        # signature verification alone, over the same parsed entries (what SourceKeys.check does)
        entries = [parse_entry(el, 65536).entry for el in made[("firehose", 1)][:args.posts]]
        c0 = time.process_time()
        bad = sum(verify(e, KEYS) is not None for e in entries)
        verify_s = time.process_time() - c0
        c0 = time.process_time()
        for e in entries:
            canonical(e)
        canonical_s = time.process_time() - c0
        async with core.transactions() as tx:
            held = {name: await tx.feed.latest(ref) for name, (_, ref) in pipes.items()}
        streamed = len((await core.stream.after(0, 10 ** 6)).posts)  # firehose posts are streamed, blog ones not
        core.search.close()
        await engine.dispose()

    measured = per_round * args.rounds
    results = []
    for (case, batch) in made:
        res = {"db": args.db, "case": case, "batch": batch, "posts": measured,
               "stored": stored[(case, batch)],
               "cpu_s": round(cpu[(case, batch)], 3),
               "posts_per_cpu_s": round(measured / cpu[(case, batch)], 1),
               "cpu_us_per_post": round(cpu[(case, batch)] / measured * 1e6, 1),
               "wall_posts_per_s": round(measured / wall[(case, batch)], 1)}
        if pg:
            res["db_cpu_us_per_post"] = round(db_cpu[(case, batch)] / measured * 1e6, 1)
        results.append(res)
        print(json.dumps(res), flush=True)
    by = {(r["case"], r["batch"]): r for r in results}
    verify_us = verify_s / len(entries) * 1e6
    summary = {"db": args.db, "verify_only_us_per_post": round(verify_us, 1),
               "canonical_only_us_per_post": round(canonical_s / len(entries) * 1e6, 1),
               "verify_failures": bad, "drops": {f"{k[0]}@{k[1]}": v for k, v in guard.drops.items()},
               "attributed_to": {k: v.publisher if v else None for k, v in held.items()},
               "streamed_posts": streamed}
    for b in batches:
        fh, fb = by[("firehose", b)], by[("followed blog", b)]
        summary[f"cpu_ratio_firehose_vs_blog_batch{b}"] = round(fh["cpu_us_per_post"] / fb["cpu_us_per_post"], 2)
        summary[f"verify_share_of_firehose_batch{b}"] = round(verify_us / fh["cpu_us_per_post"], 3)
        summary[f"extra_us_per_post_batch{b}"] = round(fh["cpu_us_per_post"] - fb["cpu_us_per_post"], 1)
    print(json.dumps(summary), flush=True)

    print(f"\naggregator ingest, {args.db}: {measured} posts per case in {args.rounds} interleaved rounds; "
          "CPU of the whole process (time.process_time)")
    print(f"{'case':<16} {'batch':>5} {'stored':>7} {'posts/s/core':>13} {'µs/post':>8} {'wall posts/s':>13}"
          + (f" {'db µs/post':>11}" if pg else ""))
    for r in results:
        print(f"{r['case']:<16} {r['batch']:>5} {r['stored']:>7} {r['posts_per_cpu_s']:>13} "
              f"{r['cpu_us_per_post']:>8} {r['wall_posts_per_s']:>13}"
              + (f" {r['db_cpu_us_per_post']:>11}" if pg else ""))
    print(f"signature verification alone: {summary['verify_only_us_per_post']} µs/post "
          f"(of which C14N {summary['canonical_only_us_per_post']} µs)")
    for b in batches:
        print(f"batch {b}: firehose / followed blog CPU = {summary[f'cpu_ratio_firehose_vs_blog_batch{b}']}x "
              f"(+{summary[f'extra_us_per_post_batch{b}']} µs/post); verification = "
              f"{summary[f'verify_share_of_firehose_batch{b}'] * 100:.1f}% of a firehose post")
    return {"args": vars(args), "results": results, "summary": summary}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=2000, help="measured posts per case (after 50 warm-up)")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds the posts are split into")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--json")
    a = ap.parse_args()
    out = asyncio.run(main(a))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
