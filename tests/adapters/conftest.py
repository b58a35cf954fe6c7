# SPDX-License-Identifier: AGPL-3.0-or-later
"""XML in, XML out: the server as the composition root builds it, over SQLite, without a socket."""

from __future__ import annotations

import pytest

from ..support.world import World


@pytest.fixture
async def wire(tmp_path):
    """The whole server (tests/support/world.py) with item ids fixed to 'fixed' and small payloads."""
    world = await World.start(tmp_path, extra="[limits]\nmax_payload_bytes = 2048\n"
                                              "[spamguard]\nlocal_publishes_per_minute = 0\n"
                                              "im_commands_per_minute = 0\nsubscribes_per_minute = 0\n")
    world.app.core.pubsub._new_id = lambda: "fixed"  # the id source the composition root gave it
    yield world
    await world.close()
