# SPDX-License-Identifier: AGPL-3.0-or-later
"""Does the worker tier scale? (issue #16) Publish throughput at 1, 2 and 4 workers, each
worker held to the same CPU quota, so that adding a worker adds a fixed amount of CPU
as adding a machine would, on a machine with only 2 cores.

Each worker runs in a cgroup of its own (cgroup v1 `cpu` controller,
`cpu.cfs_quota_us`, default 15 % of a core); ejabberd (domain_balancing, type
destination, K = 4 fixed slots; the workers hold K / W connections each) and
PostgreSQL run unrestricted on the rest. B blogs (default 64, spread over the slots by
ejabberd's hash) each have one closed-loop publisher (the next publish is sent when the
last was answered), enough to keep every worker saturated. Throughput is the
acknowledged publishes per second over the measured period.

The Universal Scalability Law C(N) = N / (1 + σ(N − 1) + κN(N − 1)) is fitted to the
relative throughputs (least squares over σ, κ ≥ 0): σ is contention (serialised work,
e.g. every public post trimming the one public-timeline node), κ coherency.

    .venv/bin/python -m bench.cluster_scaling [--workers 1,2,4,1,2,4] [--quota 15] [--blogs 64]
                                              [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

from bench.cluster import Cluster, balanced_host, post
from bench.common import cpu_seconds
from tests.support.ejabberd import Ejabberd
from tests.support.mini import Mini
from tests.support.postgres import PostgresServer, fresh_database

IP = "127.0.20.10"
CGROUP = Path("/sys/fs/cgroup/cpu")


class Quota:
    """A cgroup v1 `cpu` group holding one process to `percent` of one core."""

    def __init__(self, name: str, percent: float) -> None:
        self.path = CGROUP / f"xmppblog-bench-{name}-{os.getpid()}"
        self.path.mkdir()
        (self.path / "cpu.cfs_period_us").write_text("100000")
        (self.path / "cpu.cfs_quota_us").write_text(str(int(percent * 1000)))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled_seconds(self) -> float:
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat.get("throttled_time", 0)) / 1e9

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                (CGROUP / "cgroup.procs").write_text(pid)
            self.path.rmdir()


async def run(server: Ejabberd, pg: PostgresServer, base: Path, workers: int, args) -> dict:
    cluster = Cluster(server, base / f"s{workers}", fresh_database(pg.url), args.slots // workers)
    quotas: list[Quota] = []
    blogs = [Mini(server.ip, server.domain, f"s{workers}b{i}") for i in range(args.blogs)]
    try:
        for _ in range(workers):
            cluster.start()
        await cluster.settled(workers)
        for name, comp in cluster.workers.items():
            q = Quota(name, args.quota)
            q.add(comp.proc.pid)  # type: ignore[union-attr]
            quotas.append(q)
        for i in range(0, len(blogs), 32):
            await asyncio.gather(*(b.connect() for b in blogs[i:i + 32]))
        for b in blogs:
            b.start_counting()
        acked = 0
        counting = False
        stop = False

        async def publisher(b: Mini) -> None:
            nonlocal acked
            n = 0
            while not stop:
                n += 1
                if await b.ask(post(f"{b.user}@{server.component}", n, f"q{n}"), timeout=30) == b"result" \
                        and counting:
                    acked += 1

        tasks = [asyncio.ensure_future(publisher(b)) for b in blogs]
        await asyncio.sleep(args.warmup)
        pids = cluster.pids()
        cpu0 = sum(cpu_seconds(p) for p in pids)
        throttled0 = sum(q.throttled_seconds() for q in quotas)
        counting, t0 = True, time.monotonic()
        await asyncio.sleep(args.seconds)
        counting = False
        elapsed = time.monotonic() - t0
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        throttled = sum(q.throttled_seconds() for q in quotas) - throttled0
        stop = True
        await asyncio.wait(tasks, timeout=40)
        logs = "".join(c.log_text() for c in cluster.workers.values())
        retried = logs.count("a concurrent change won")
        return {"workers": workers, "quota_percent_each": args.quota, "publishes_per_s": round(acked / elapsed, 1),
                "worker_cpu_ms_per_publish": round(cpu / max(1, acked) * 1000, 2),
                "worker_cpu_percent_of_quota": round(cpu / elapsed / workers / (args.quota / 100) * 100, 1),
                "throttled_s_per_worker_per_s": round(throttled / elapsed / workers, 3),
                "transactions_run_again": retried}
    finally:
        await asyncio.gather(*(b.close() for b in blogs))
        cluster.stop()
        for q in quotas:
            q.remove()


def usl_fit(points: dict[int, float]) -> tuple[float, float]:
    """(σ, κ) minimising the squared error of C(N) = N / (1 + σ(N−1) + κN(N−1)) on
    relative throughputs (a grid search: two parameters, a handful of points)."""
    best = (float("inf"), 0.0, 0.0)
    for i in range(0, 501):
        sigma = i / 1000
        for j in range(0, 201):
            kappa = j / 2000
            err = sum((n / (1 + sigma * (n - 1) + kappa * n * (n - 1)) - c) ** 2 for n, c in points.items())
            if err < best[0]:
                best = (err, sigma, kappa)
    return best[1], best[2]


async def main(args) -> dict:
    if not (CGROUP / "cpu.cfs_quota_us").exists() or not os.access(CGROUP, os.W_OK):
        raise SystemExit(f"needs a writable cgroup v1 cpu controller at {CGROUP}")
    results = []
    with balanced_host("scale.test", IP, args.slots) as (server, pg, base):
        for w in args.workers:
            r = await run(server, pg, base, w, args)
            print(json.dumps(r), flush=True)
            results.append(r)
    # a worker count may be run more than once (e.g. 1,2,4,1,2,4: interleaved against drift)
    by_count: dict[int, list[float]] = {}
    for r in results:
        by_count.setdefault(r["workers"], []).append(r["publishes_per_s"])
    mean = {w: sum(v) / len(v) for w, v in by_count.items()}
    relative = {w: mean[w] / mean[1] for w in sorted(mean)}
    sigma, kappa = usl_fit(relative)
    summary = {"runs": results, "relative": {str(k): round(v, 2) for k, v in relative.items()},
               "usl_sigma": sigma, "usl_kappa": kappa}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)
    return summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 1, 2, 4])
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--quota", type=float, default=15.0, help="percent of one core per worker")
    ap.add_argument("--blogs", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    out = asyncio.run(main(a))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
