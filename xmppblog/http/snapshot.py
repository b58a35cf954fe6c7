# SPDX-License-Identifier: AGPL-3.0-or-later
"""Snapshot: an expensive, public answer computed at most once per period.

The user directory and the server statistics count across every blog: at
hundreds of thousands of posts one computation holds the event loop for a
noticeable time, and anyone can ask for it in a loop. Everyone asking within
`ttl` seconds shares one answer, and concurrent askers share one computation;
`expire` drops an answer that became wrong (a blog was protected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Snapshot(Generic[T]):
    def __init__(self, compute: Callable[[], Awaitable[T]], ttl: float,
                 clock: Callable[[], float]) -> None:
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._value: tuple[float, T] | None = None
        self._generation = 0
        self._running: tuple[int, asyncio.Future[T]] | None = None

    def expire(self) -> None:
        """The next asker gets a fresh answer (what it holds is no longer true)."""
        self._value = None
        self._generation += 1

    async def get(self) -> T:
        """The answer, as computed at most `ttl` seconds ago (and since the last `expire`)."""
        if self._value is not None and self._clock() < self._value[0]:
            return self._value[1]
        if self._running is None or self._running[0] != self._generation:
            # a computation started before an expire may read the old state: not joined
            self._running = (self._generation, asyncio.ensure_future(self._refresh(self._generation)))
        # shield: one asker going away does not cancel the computation the others wait for
        return await asyncio.shield(self._running[1])

    async def _refresh(self, generation: int) -> T:
        try:
            value = await self._compute()
            if generation == self._generation:
                self._value = (self._clock() + self._ttl, value)
            return value
        finally:
            if self._running is not None and self._running[0] == generation:
                self._running = None
