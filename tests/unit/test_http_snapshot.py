# SPDX-License-Identifier: AGPL-3.0-or-later
"""The HTTP API's shared answers (directory, statistics) and whom a request counts against."""

from __future__ import annotations

import asyncio

import pytest

from xmppblog.http.server import client_of
from xmppblog.http.snapshot import Snapshot


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.calls += 1
        mine = self.calls
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("store down")
        return mine


async def test_concurrent_askers_share_one_computation_and_the_answer_lasts_its_ttl():
    now = [0.0]
    compute = Counter()
    snap = Snapshot(compute, 30.0, lambda: now[0])
    waiting = [asyncio.create_task(snap.get()) for _ in range(50)]
    await asyncio.sleep(0)
    compute.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    now[0] = 29.0
    assert await snap.get() == 1 and compute.calls == 1
    now[0] = 30.5
    assert await snap.get() == 2 and compute.calls == 2


async def test_an_asker_leaving_does_not_cancel_the_others_and_a_failure_is_not_kept():
    compute = Counter()
    snap = Snapshot(compute, 30.0, lambda: 0.0)
    leaver, stayer = asyncio.create_task(snap.get()), asyncio.create_task(snap.get())
    await asyncio.sleep(0)
    leaver.cancel()
    compute.fail = True
    compute.gate.set()
    with pytest.raises(RuntimeError):
        await stayer
    compute.fail = False
    assert await snap.get() == 2


@pytest.mark.parametrize("remote, key", [
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("192.0.2.7", "192.0.2.7"),
    ("fe80::1%eth0", "fe80::/64"),
    (None, "?"),
])
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(remote, key):
    assert client_of(remote) == key


async def test_an_expired_answer_is_never_served_again_even_from_a_computation_in_flight():
    compute = Counter()
    snap = Snapshot(compute, 30.0, lambda: 0.0)
    early = asyncio.create_task(snap.get())
    await asyncio.sleep(0)
    snap.expire()  # e.g. a blog was protected while the directory was being counted
    late = asyncio.create_task(snap.get())
    await asyncio.sleep(0)
    compute.gate.set()
    assert await early == 1 and await late == 2
    assert await snap.get() == 2 and compute.calls == 2
