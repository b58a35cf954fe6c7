# SPDX-License-Identifier: AGPL-3.0-or-later
"""Chat copies of posts as written: the entry's own title, its line breaks, and an edit marked
as an edit (issue #15: Libervia's titled posts lost their title, and an edit looked new)."""

from __future__ import annotations

import pytest

from ..support.stanzas import bodies, entry, publish
from ..support.world import World

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path)
    yield w
    await w.close()


async def test_chat_copies_show_the_title_and_mark_an_edit(world: World):
    await world.chat(f"{BOB}/pc", "follow alice@example.org")
    await world.online(f"{BOB}/pc")
    libervia = entry("Paging test", content="<content>first line\nsecond line</content>")
    for n in (1, 2):
        await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "set",
                       publish(item_id="titled", raw_entry=libervia), iq_id=f"t{n}")
    copies = [b for _, b in bodies(await world.drain(), BOB)]
    assert [c.split("\n#")[0] for c in copies] == [
        "Paging test\nfirst line\nsecond line", "✎ edited: Paging test\nfirst line\nsecond line"], copies
