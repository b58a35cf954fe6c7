# SPDX-License-Identifier: AGPL-3.0-or-later
"""How long a search holds up everything else, at 200,000 indexed posts (issue #13).

The same database of N public posts (1,000 users, a vocabulary of 2,000 words,
"weather" in a fifth of the posts, #xmpp in a tenth) is searched through each
implementation's own HTTP app, in process, while a heartbeat task asks the
event loop for a 1 ms timer over and over: the largest lateness of that timer
during a request is how long the search delayed every other piece of work
(XMPP stanzas, the outbox, other HTTP requests). Implementations in one run:

* `baseline`: the code of a git revision (default bcf2175, today's figure),
  extracted with `git archive`; its database is the fill at schema 0009;
* `head`: this checkout; its database is the same fill, upgraded by its own
  migrations (the time the upgrade took is reported too).

Run: `.venv/bin/python bench/search_stall.py [--posts 200000] [--json out.json]`.
Each implementation runs in a child process (`--serve`) that imports only its
own xmppblog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    ("rare word", "q=zymurgy"),
    ("common word", "q=weather"),
    ("common word, by relevance", "q=weather&order=relevance"),
    ("common word, deep page", "q=weather&cursor={deep}"),
    ("phrase", "q=%22weather+report%22"),
    ("tag, many matches", "q=%23xmpp"),
    ("tag, no match", "q=%23nosuchtag"),
    ("author, no match", "q=from:nobody@example.org"),
    ("author, 200 posts", "q=from:user7@example.org"),
    ("word and tag", "q=weather+%23xmpp"),
]
REPEAT = 5


# ---------------------------------------------------------------- the database (schema 0009)

def fill(db: Path, posts: int, users: int = 1000) -> None:
    """The same posts for everyone: nodes, items and the 0008 full-text table, by plain SQL."""
    from alembic import command

    sys.path.insert(0, str(ROOT))
    from xmppblog.storage.migrate import alembic_config
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{db}"), "0009")
    rnd = random.Random(13)
    vocab = [f"w{n}" for n in range(2000)] + ["zymurgy"]
    conn = sqlite3.connect(db)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    node_ids = []
    for u in range(users):
        cur = conn.execute("INSERT INTO nodes (service, node, owner, access_model, max_items, notify_retract, "
                           "title, created_at, remote) VALUES (?, 'urn:xmpp:microblog:0', ?, 'open', 10000, 1, "
                           "'', ?, 0)", (f"user{u}@blog.example.org", f"user{u}@example.org", now.isoformat()))
        node_ids.append(cur.lastrowid)
    items, docs = [], []
    for n in range(posts):
        u = n % users
        words = rnd.choices(vocab[:-1], k=14)
        if n % 5 == 0:
            words.insert(rnd.randrange(len(words)), "weather")
        if n % 50 == 0:
            words += ["weather", "report"]
        if n == posts // 2:
            words.append("zymurgy")
        tags = ["xmpp"] if n % 10 == 0 else []
        text = " ".join(words) + "".join(f" #{t}" for t in tags)
        when = (now + timedelta(seconds=n)).isoformat()
        payload = (f"<entry xmlns='http://www.w3.org/2005/Atom'><title>{text}</title><author><name>user{u}</name>"
                   f"<uri>xmpp:user{u}@example.org</uri></author></entry>")
        items.append((node_ids[u], f"p{n}", f"user{u}@example.org", payload, when, when))
        docs.append((text, " ".join(tags), "", f"user{u}@example.org", f"user{u}@blog.example.org",
                     "urn:xmpp:microblog:0", f"p{n}", when))
        if len(items) == 20000:
            _flush(conn, items, docs)
    _flush(conn, items, docs)
    conn.commit()
    conn.close()


def _flush(conn: sqlite3.Connection, items: list, docs: list) -> None:  # type: ignore[type-arg]
    conn.executemany("INSERT INTO items (node_id, item_id, publisher, payload, published, updated) "
                     "VALUES (?, ?, ?, ?, ?, ?)", items)
    conn.executemany("INSERT INTO search_fts (text, tags, mentions, author, service, node, item_id, published) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", docs)
    items.clear()
    docs.clear()


# ---------------------------------------------------------------- one implementation (child process)

async def serve(db: Path, migrate_first: bool) -> dict:  # type: ignore[type-arg]
    from aiohttp.test_utils import TestClient, TestServer

    import xmppblog.app as app_module
    from xmppblog import config
    result: dict = {"xmppblog": str(Path(app_module.__file__).parents[1])}  # type: ignore[type-arg]
    url = f"sqlite+aiosqlite:///{db}"
    if migrate_first:
        from xmppblog.storage import migrate
        t = time.monotonic()
        await migrate.upgrade(url)
        result["migration_seconds"] = round(time.monotonic() - t, 1)
    conf = db.parent / f"{db.stem}.toml"
    unlimited = "searches_per_minute = 0\n" if "searches_per_minute" in config.SpamguardConfig.__dataclass_fields__ \
        else ""
    conf.write_text(f'[component]\njid = "blog.example.org"\nsecret = "s"\n[database]\nurl = "{url}"\n'
                    f'[http]\nlisten = ""\n[spamguard]\n{unlimited}')
    app = app_module.App(config.load(str(conf), env={}))
    if hasattr(app, "http_api"):
        api = app.http_api()
    else:
        from xmppblog.http.server import HttpApi
        api = HttpApi(app.service, app.social, "http://blog.example.org", app.stats)
    client = TestClient(TestServer(api.app))
    await client.start_server()
    freeze = getattr(app_module, "freeze_startup_objects", None)
    if freeze is not None:
        freeze()  # what `run` does once started, where the revision does it
    loop = asyncio.get_running_loop()
    lateness: list[float] = []

    async def heartbeat() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.001)
            lateness.append(loop.time() - t - 0.001)

    beat = asyncio.create_task(heartbeat())
    deep = 990 if migrate_first else 199_990
    rows = []
    try:
        await client.get("/api/search?q=warmup")
        for name, query in QUERIES:
            walls, stalls, status = [], [], 0
            for _ in range(REPEAT):
                await asyncio.sleep(0.02)
                lateness.clear()
                t = time.perf_counter()
                r = await client.get("/api/search?" + query.format(deep=deep))
                await r.read()
                walls.append(time.perf_counter() - t)
                # the heartbeat records a late tick when it runs: give it the loop once more
                await asyncio.sleep(0.005)
                stalls.append(max(lateness, default=0.0))
                status = r.status
            rows.append({"query": name, "status": status, "wall_ms_p50": round(sorted(walls)[REPEAT // 2] * 1000, 1),
                         "loop_stall_ms_max": round(max(stalls) * 1000, 1)})
    finally:
        beat.cancel()
        await client.close()
        index = getattr(app, "search_index", None)
        if index is not None:
            index.close()
        await app.engine.dispose()
    result["queries"] = rows
    return result


# ---------------------------------------------------------------- the run

def child(src: Path, db: Path, migrate_first: bool) -> dict:  # type: ignore[type-arg]
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, str(Path(__file__)), "--serve", str(db)]
                         + (["--migrate"] if migrate_first else []),
                         env=env, cwd=db.parent, capture_output=True, text=True, timeout=3600)
    if out.returncode:
        sys.exit(f"{src}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--posts", type=int, default=200_000)
    p.add_argument("--baseline", default="bcf2175", help="git revision of today's figure")
    p.add_argument("--json")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--migrate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        print(json.dumps(asyncio.run(serve(Path(args.serve), args.migrate))))
        return
    work = Path(tempfile.mkdtemp(prefix="search-stall-"))
    try:
        base_src = work / "baseline"
        base_src.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive.stdout, check=True)
        t = time.monotonic()
        fill(work / "fill.db", args.posts)
        print(f"filled {args.posts:,} posts in {time.monotonic() - t:.0f}s", flush=True)
        results = {}
        for name, src, migrate_first in (("baseline", base_src, False), ("head", ROOT, True)):
            db = work / f"{name}.db"
            shutil.copy(work / "fill.db", db)
            results[name] = child(src, db, migrate_first)
            results[name]["revision"] = args.baseline if name == "baseline" else "HEAD"
        print(f"search at {args.posts:,} indexed posts: wall time (p50 of {REPEAT}) and the largest event-loop "
              "stall during the request")
        print(f"{'query':<28} {'baseline ms':>12} {'stall ms':>9}   {'head ms':>8} {'stall ms':>9}  status")
        for b, h in zip(results["baseline"]["queries"], results["head"]["queries"], strict=True):
            print(f"{b['query']:<28} {b['wall_ms_p50']:>12} {b['loop_stall_ms_max']:>9}   "
                  f"{h['wall_ms_p50']:>8} {h['loop_stall_ms_max']:>9}  {b['status']}/{h['status']}")
        worst = max(q["loop_stall_ms_max"] for q in results["head"]["queries"])
        print(f"largest stall at head: {worst} ms (target < 20); "
              f"upgrade of the index at head: {results['head'].get('migration_seconds')} s")
        if args.json:
            Path(args.json).write_text(json.dumps({"posts": args.posts, **results}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
