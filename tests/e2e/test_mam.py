# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #15: XEP-0313 archives of a blog, a comments node and the public timeline, asked
by a slixmpp client through real Prosody: paging to the end both ways, full text under
both field names, edits and retractions, and refused queries."""

from __future__ import annotations

from typing import Any

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Collector
from slixmpp.xmlstream.matcher import MatchXPath

from ..support.clients import TIMEOUT, raw_iq
from .test_pubsub import NODE, blog, entry

MAM = "urn:xmpp:mam:2"
PSE = "http://jabber.org/protocol/pubsub#event"
SERVICE = "blog.alpha.test"
FULLTEXT = "{urn:xmpp:fulltext:0}fulltext"


class Answer:
    """One archive query's results (in the order they came) and its <fin/>."""

    def __init__(self, results: list[Any], reply: Any) -> None:
        self.results = results
        fin = reply.xml.find(f"{{{MAM}}}fin")
        self.complete = fin.get("complete") == "true"
        rsm = "{http://jabber.org/protocol/rsm}"
        self.first, self.last = fin.findtext(f"{rsm}set/{rsm}first"), fin.findtext(f"{rsm}set/{rsm}last")
        self.count = fin.findtext(f"{rsm}set/{rsm}count")

    @property
    def ids(self) -> list[str]:
        return [m.xml.find(f".//{{{PSE}}}item").get("id") for m in self.results]

    def text(self) -> str:
        return " ".join(str(m) for m in self.results)


async def archive(client: Any, to: str, node: str, fields: dict[str, str] | None = None,
                  **rsm: Any) -> Answer:
    """A MAM query with slixmpp's xep_0313 stanzas (the node attribute set by hand: the plugin's
    retrieve() knows no pubsub archives), collecting the results as the plugin does."""
    if "xep_0313" not in client.plugin:
        client.register_plugin("xep_0313")
    iq = client.make_iq_set(ito=to)
    query_id = iq["id"]
    iq["mam"]["queryid"] = query_id
    iq["mam"].xml.set("node", node)
    for var, value in (fields or {}).items():
        iq["mam"].set_custom_field(var, value)
    for key, value in rsm.items():
        iq["mam"]["rsm"][key] = value if value is True else str(value)
    collector = Collector(f"mam-{query_id}", MatchXPath(f"{{jabber:client}}message/{{{MAM}}}result"))
    client.register_handler(collector)
    try:
        reply = await iq.send(timeout=TIMEOUT)
    finally:
        got = collector.stop()
    mine = [m for m in got if m.xml.find(f"{{{MAM}}}result").get("queryid") == query_id]
    for m in mine:
        assert m["from"].bare == to, "results come from the archive's JID"
        assert m.xml.find(f"{{{MAM}}}result/{{urn:xmpp:forward:0}}forwarded/{{urn:xmpp:delay}}delay") is not None
    return Answer(mine, reply)


async def refusal(coro: Any) -> tuple[str, str]:
    try:
        await coro
    except IqError as exc:
        return exc.iq["error"]["type"], exc.iq["error"]["condition"]
    raise AssertionError("the query unexpectedly succeeded")


async def walk(client: Any, to: str, node: str, fields: dict[str, str] | None = None, max: int = 2,
               backwards: bool = False) -> list[str]:
    """Every item id of an archive, paging to the end (forwards, or backwards from the newest)."""
    seen: list[str] = []
    cursor: dict[str, Any] = {"before": True} if backwards else {}
    for _ in range(50):
        page = await archive(client, to, node, fields, max=max, **cursor)
        seen = page.ids + seen if backwards else seen + page.ids
        if page.complete:
            return seen
        assert page.results, "an incomplete page moves on"
        cursor = {"before": page.first} if backwards else {"after": page.last}
    raise AssertionError("never complete")


async def test_blog_archive_paging_full_text_edits(clients):
    mae, ned = await clients("mae"), await clients("ned")
    for n in range(5):
        word = " with zucchinimam" if n in (1, 3) else ""
        await mae.pubsub.publish(blog("mae"), NODE, id=f"m{n}", payload=entry(f"archived post {n}{word}"))
    info = await ned.plugin["xep_0030"].get_info(jid=blog("mae"), node=NODE)
    assert MAM in info["disco_info"]["features"] and "urn:xmpp:fulltext:0" in info["disco_info"]["features"]
    form = await raw_iq(ned, blog("mae"), "get", f"<query xmlns='{MAM}'/>")
    fields = {f.get("var"): f.get("type") for f in form.xml.iter("{jabber:x:data}field")}
    assert fields["fulltext"] == fields[FULLTEXT] == fields["start"] == "text-single"

    first = await archive(ned, blog("mae"), NODE, max=2)
    assert first.ids == ["m0", "m1"] and not first.complete and first.count == "5"
    assert "archived post 0" in first.text()
    assert await walk(ned, blog("mae"), NODE) == ["m0", "m1", "m2", "m3", "m4"]
    assert await walk(ned, blog("mae"), NODE, backwards=True) == ["m0", "m1", "m2", "m3", "m4"]
    newest = await archive(ned, blog("mae"), NODE, max=2, before=True)
    assert newest.ids == ["m3", "m4"] and not newest.complete, "before='': the last page, oldest first"

    # full text under Libervia's field name and XEP-0431's
    for var in ("fulltext", FULLTEXT):
        found = await archive(ned, blog("mae"), NODE, {var: "zucchinimam"})
        assert found.ids == ["m1", "m3"] and found.complete and found.count == "2", var
    assert await walk(ned, blog("mae"), NODE, {"fulltext": "zucchinimam"}, max=1) == ["m1", "m3"]

    # the archive is the node's items: an edit moves to the end, a retraction leaves
    await mae.pubsub.publish(blog("mae"), NODE, id="m0", payload=entry("archived post 0, edited"))
    await mae.pubsub.retract(blog("mae"), NODE, "m2")
    assert await walk(ned, blog("mae"), NODE) == ["m1", "m3", "m4", "m0"]
    assert "edited" in (await archive(ned, blog("mae"), NODE, before=True, max=1)).text()

    # refused queries
    assert await refusal(archive(ned, blog("mae"), NODE, {"colour": "red"})) == ("modify", "bad-request")
    assert await refusal(archive(ned, blog("mae"), NODE, {"start": "last tuesday"})) == ("modify", "bad-request")
    assert await refusal(archive(ned, blog("mae"), NODE, {"with": "ned@alpha.test"})) == (
        "cancel", "feature-not-implemented")
    assert await refusal(archive(ned, blog("mae"), NODE, after="m1")) == ("cancel", "item-not-found")
    assert await refusal(archive(ned, "nobody@blog.alpha.test", NODE)) == ("cancel", "item-not-found")


async def test_comments_and_public_timeline_archives(clients):
    mae, ned = await clients("mae"), await clients("ned")
    await mae.pubsub.publish(blog("mae"), NODE, id="cpost", payload=entry("a post to comment on, zucchinitl"))
    comments = f"{NODE}:comments/cpost"
    empty = await archive(ned, blog("mae"), comments)
    assert empty.ids == [] and empty.complete and empty.count == "0", "a fresh post's comments: empty"
    for n in range(3):
        await ned.pubsub.publish(blog("mae"), comments, id=f"k{n}", payload=entry(f"comment {n}"))
    assert await walk(ned, blog("mae"), comments) == ["k0", "k1", "k2"]
    assert await walk(mae, blog("mae"), comments, backwards=True, max=1) == ["k0", "k1", "k2"]
    assert "comment 2" in (await archive(mae, blog("mae"), comments, before=True, max=1)).text()
    # full text on comments, which the index does not hold: the node is scanned, same language
    assert await walk(ned, blog("mae"), comments, {"fulltext": "comment"}, max=1) == ["k0", "k1", "k2"]
    assert await walk(ned, blog("mae"), comments, {FULLTEXT: '"comment 1"'}) == ["k1"]

    info = await ned.plugin["xep_0030"].get_info(jid=SERVICE)
    assert MAM in info["disco_info"]["features"]
    await mae.pubsub.publish(blog("mae"), NODE, id="tl2", payload=entry("timeline zucchinitl again"))
    timeline = await walk(ned, SERVICE, NODE, {FULLTEXT: "zucchinitl"}, max=1)
    assert timeline == ["mae/cpost", "mae/tl2"], "the public timeline's copies, found by their originals"
    newest = await archive(ned, SERVICE, NODE, max=1, before=True)
    assert newest.ids == ["mae/tl2"] and "timeline zucchinitl again" in newest.text()
    assert (await walk(ned, SERVICE, NODE, max=50))[-1] == "mae/tl2", "paged to the end of the timeline"
