# SPDX-License-Identifier: AGPL-3.0-or-later
"""Is the database there, and at which revision? (for /healthz and `xmppblog doctor`)"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database; raises whatever the driver raises when it cannot answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
