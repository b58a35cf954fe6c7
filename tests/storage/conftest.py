# SPDX-License-Identifier: AGPL-3.0-or-later
"""A BlogService over real repositories, migrated with Alembic, for each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta




class FakeClock:
    """Moves only by `advance`."""

    def __init__(self) -> None:
        self.t = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


