# SPDX-License-Identifier: AGPL-3.0-or-later
"""What every benchmark shares: CPU from /proc, percentiles, the GC statement, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.postgres import PostgresServer

TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]
PS = "http://jabber.org/protocol/pubsub"
GC = "Prosody 0.12.3 on Lua 5.4, default GC settings (incremental)"

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def tree_cpu(pid: int | None) -> float:
    """CPU of a process and its direct children (PostgreSQL's postmaster and backends)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # cutime + cstime: the children that exited and were reaped (PostgreSQL backends whose
    # connection closed) still count, so the total never goes backwards between two readings
    total = cpu_seconds(pid) + (int(fields[13]) + int(fields[14])) / TICK
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


@contextlib.contextmanager
def maybe_postgres(db: str, base: Path) -> Iterator[PostgresServer | None]:
    """A private PostgreSQL server for `--db postgres` (None for SQLite), stopped afterwards."""
    if db != "postgres":
        yield None
        return
    pg = PostgresServer(base / "pg")
    if why := pg.unavailable():
        sys.exit(f"--db postgres: {why}")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
