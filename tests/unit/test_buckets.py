# SPDX-License-Identifier: AGPL-3.0-or-later
"""Token buckets on a fake clock."""

from __future__ import annotations

from xmppblog.spamguard.buckets import TokenBuckets


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_per_key():
    clock = Clock()
    b = TokenBuckets(6, clock)
    assert [b.take("a") for _ in range(7)] == [True] * 6 + [False]
    assert b.take("b"), "each key has its own bucket"
    clock.t += 10  # 6/min = one token every 10 s
    assert b.take("a") and not b.take("a")
    clock.t += 600
    assert sum(b.take("a") for _ in range(10)) == 6, "never more than a full bucket"


def test_zero_disables_and_memory_is_bounded():
    clock = Clock()
    assert all(TokenBuckets(0, clock).take("x") for _ in range(1000))
    b = TokenBuckets(1, clock, max_keys=100)
    for i in range(1000):
        b.take(f"k{i}")
    assert len(b) == 100
