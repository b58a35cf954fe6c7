# SPDX-License-Identifier: AGPL-3.0-or-later
"""Chat short ids with ids clients chose (issue #15).

Libervia chooses ids such as `paging-1`, `paging-10`: the first six characters
named four posts, and the bot's own suggestion (`alice/paging`) failed again.
Ids of ours are shown by their first characters, any other whole; a whole id
names its post however short or long, and every id the bot suggests resolves.
"""

from __future__ import annotations

import re

import pytest

from xmppblog.im.text import short_id

from ..support.stanzas import publish, published_id
from ..support.world import World

ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path)
    yield w
    await w.close()


def test_only_ids_of_ours_are_shortened():
    assert short_id("3f9a1c0b2d4e") == "3f9a1c"
    for whole in ("paging-10", "p1", "3f9a1c", "3F9A1C0B2D4E", "d1b1f6e6-8c1a-4cde-9d4e-4f1c2a3b4c5d", "a/b"):
        assert short_id(whole) == whole


async def post(world: World, who: str, item_id: str, text: str) -> str:
    blog = who.replace("@example.org", "@blog.example.org")
    return published_id(await world.iq(f"{who}/pc", blog, "set", publish(text=text, item_id=item_id),
                                       iq_id=f"p-{item_id}"))


async def test_whole_client_ids_resolve_and_suggestions_resolve(world: World):
    for n in ("1", "10", "11", "12"):
        await post(world, ALICE, f"paging-{n}", f"page {n}")
    await post(world, ALICE, "a/b", "an id with a slash")
    await post(world, ALICE, "x", "a one-letter id")
    await post(world, MALLORY, "paging-10", "same id, another blog")
    await world.chat(f"{BOB}/pc", "follow alice@example.org")
    await world.chat(f"{BOB}/pc", "follow mallory@example.org")

    # a whole id, however many longer ids share it (before: 'paging' named four posts)
    assert "alice@example.org" in await world.chat(f"{BOB}/pc", "reply paging-1 first page")
    assert "alice@example.org" in await world.chat(f"{BOB}/pc", "repost a/b")
    assert "alice@example.org" in await world.chat(f"{BOB}/pc", "repost x")
    # the same whole id on two blogs: the answer names each, and each name resolves
    answer = await world.chat(f"{BOB}/pc", "reply paging-10 which one?")
    assert "matches 2 posts" in answer, answer
    names = re.findall(r"\b(\w+/paging-10)\b", answer)
    assert sorted(names) == ["alice/paging-10", "mallory/paging-10"], answer
    for name, author in zip(sorted(names), (ALICE, MALLORY), strict=True):
        reply = await world.chat(f"{BOB}/pc", f"reply {name} this one")
        assert reply.startswith(f"Replied to {author}'s post #paging-10"), reply
    # a prefix of a client id still works where it names one post, and says so where not
    answer = await world.chat(f"{BOB}/pc", "reply paging-1 again")
    assert answer.startswith("Replied to alice@example.org's post #paging-1 "), answer
    answer = await world.chat(f"{BOB}/pc", "reply pagi hm")
    assert "matches" in answer, answer
    for name in re.findall(r"\b(\w+/[\w-]+)\b", answer.split("one of:", 1)[1]):
        assert (await world.chat(f"{BOB}/pc", f"repost {name}")).startswith("Reposted"), name
