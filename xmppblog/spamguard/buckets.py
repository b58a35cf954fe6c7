# SPDX-License-Identifier: AGPL-3.0-or-later
"""Token buckets per key (JID or domain), on an injected clock (policy layer).

A bucket holds up to `per_minute` tokens and refills continuously; `take`
spends one. Memory is bounded: the least recently used keys are forgotten
(a forgotten key starts full again, which only ever favours legitimate peers).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    def __init__(self, per_minute: int, now: Callable[[], float], max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self._now = now
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, cost: float = 1.0) -> bool:
        """Spend `cost` tokens of `key`'s bucket; False if it has not enough. 0/min disables."""
        if self.per_minute <= 0:
            return True
        now = self._now()
        tokens, at = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
