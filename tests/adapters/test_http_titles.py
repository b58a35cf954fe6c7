# SPDX-License-Identifier: AGPL-3.0-or-later
"""The JSON API, pages and feeds show posts as written (issue #15).

Every post object has `title` (null when the post has none), text keeps its
line breaks in JSON and pages, and an Atom entry carries at most one
<content/> (RFC 4287 §4.1.1): Libervia's posts have a text and an xhtml one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ..support.stanzas import entry, publish
from ..support.world import World

ALICE = "alice@example.org"
ATOM = "http://www.w3.org/2005/Atom"
XHTML = "http://www.w3.org/1999/xhtml"
LIBERVIA = entry("Paging test", content="<content>first line\nsecond line</content>"
                 f"<content type='xhtml'><div xmlns='{XHTML}'><p>first line</p><p>second <em>line</em></p>"
                 "<script>x()</script></div></content>")


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path)
    yield w
    await w.close()


async def test_titles_line_breaks_and_one_content(world: World):
    await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "set", publish(item_id="titled", raw_entry=LIBERVIA))
    await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "set", publish(item_id="plain", text="just a note"),
                   iq_id="q2")
    http = await world.http()
    posts = (await (await http.get("/api/users/alice/posts")).json())["posts"]
    assert [(p["id"], p["title"], p["text"]) for p in posts] == [
        ("plain", None, "just a note"), ("titled", "Paging test", "first line\nsecond line")]
    for path in ("/api/timeline", "/api/users/alice/posts/titled"):
        body = await (await http.get(path)).json()
        for p in body.get("posts", [body]):
            assert "title" in p, (path, p)

    page = await (await http.get("/u/alice/titled")).text()
    assert "Paging test" in page and "first line\nsecond line" in page

    feed = ET.fromstring(await (await http.get("/feeds/users/alice.atom")).text())
    for e in feed.findall(f"{{{ATOM}}}entry"):
        assert len(e.findall(f"{{{ATOM}}}content")) <= 1, ET.tostring(e)
    titled = next(e for e in feed.findall(f"{{{ATOM}}}entry") if e.findtext(f"{{{ATOM}}}title") == "Paging test")
    content = titled.find(f"{{{ATOM}}}content")
    assert content.get("type") == "xhtml" and content.find(f".//{{{XHTML}}}em").text == "line"
    assert not list(titled.iter(f"{{{XHTML}}}script")), "sanitised"
