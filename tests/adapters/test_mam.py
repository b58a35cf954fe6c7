# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0313 on pubsub nodes, XML in and out (pubsub/xep_0313.py): the query form, results
as XEP-0313 §5 shapes them and before the iq result, and the errors of bad queries."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ..support.stanzas import DISCO_INFO, MB, PSE, STANZAS, configure, items, publish
from ..support.world import NS, World

MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
X = "{jabber:x:data}"
ALICE, BOB = "alice@example.org", "bob@example.org"
BLOG, SERVICE = "alice@blog.example.org", "blog.example.org"


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path, extra="[spamguard]\nlocal_publishes_per_minute = 0\n"
                                          "searches_per_minute = 0\n")
    yield w
    await w.close()


def query(node: str | None = MB, fields: dict[str, str] | None = None, rsm: str = "", qid: str = "q7",
          form_type: str = MAM) -> str:
    attrs = (f" node='{node}'" if node is not None else "") + f" queryid='{qid}'"
    form = ""
    if fields is not None:
        fs = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
        form = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                f"<value>{form_type}</value></field>{fs}</x>")
    return f"<query xmlns='{MAM}'{attrs}>{form}{rsm}</query>"


async def ask(world: World, payload: str, to: str = BLOG, frm: str = f"{BOB}/pc") -> list[ET.Element]:
    return await world.receive(f"<iq type='set' id='m1' from='{frm}' to='{to}'>{payload}</iq>")


def error_of(stanza: ET.Element) -> tuple[str | None, list[str]]:
    err = stanza.find(f"{{{NS}}}error")
    assert err is not None, ET.tostring(stanza)
    return err.get("type"), [c.tag for c in err if c.tag != f"{{{STANZAS}}}text"]


async def test_form_and_disco(world):
    reply = await world.iq(f"{BOB}/pc", BLOG, "get", f"<query xmlns='{MAM}'/>")
    fields = {f.get("var"): f.get("type") for f in reply.iter(f"{X}field")}
    assert fields == {"FORM_TYPE": "hidden", "start": "text-single", "end": "text-single",
                      "fulltext": "text-single", "{urn:xmpp:fulltext:0}fulltext": "text-single"}
    assert next(reply.iter(f"{X}x")).get("type") == "form"
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text="hi", item_id="p"))
    for to, node in ((BLOG, None), (SERVICE, None), (BLOG, MB), (SERVICE, MB)):
        attr = f" node='{node}'" if node else ""
        info = await world.iq(f"{BOB}/pc", to, "get", f"<query xmlns='{DISCO_INFO}'{attr}/>")
        features = {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
        assert {MAM, "urn:xmpp:fulltext:0"} <= features, (to, node)
    info = await world.iq(f"{BOB}/pc", BLOG, "get", f"<query xmlns='{DISCO_INFO}' node='{MB}:comments/p'/>")
    features = {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
    assert {MAM, "urn:xmpp:fulltext:0"} <= features, "comments: full text by a bounded scan"


async def test_results_as_messages_then_fin(world):
    for n in range(3):
        await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text=f"post {n} about cheese", item_id=f"p{n}"))
    out = await ask(world, query(fields={"fulltext": "cheese"}, rsm=f"<set xmlns='{RSM}'><max>2</max></set>"))
    assert [o.tag for o in out] == [f"{{{NS}}}message"] * 2 + [f"{{{NS}}}iq"], "results before the iq result"
    first = out[0]
    assert (first.get("from"), first.get("to")) == (BLOG, f"{BOB}/pc")
    result = first.find(f"{{{MAM}}}result")
    assert result.get("queryid") == "q7" and result.get("id")
    forwarded = result.find("{urn:xmpp:forward:0}forwarded")
    assert forwarded.find("{urn:xmpp:delay}delay").get("stamp").endswith("Z")
    item = forwarded.find(f"{{jabber:client}}message/{{{PSE}}}event/{{{PSE}}}items/{{{PSE}}}item")
    assert item.get("id") == "p0" and item.get("publisher") == ALICE
    assert item.find("{http://www.w3.org/2005/Atom}entry") is not None
    assert forwarded.find(f"{{jabber:client}}message/{{{PSE}}}event/{{{PSE}}}items").get("node") == MB
    ids = [o.find(f"{{{MAM}}}result").get("id") for o in out[:2]]
    fin = out[2].find(f"{{{MAM}}}fin")
    assert out[2].get("type") == "result" and fin.get("complete") == "false"
    assert [fin.findtext(f"{{{RSM}}}set/{{{RSM}}}{t}") for t in ("first", "last", "count")] == [*ids, "3"]
    assert fin.find(f"{{{RSM}}}set/{{{RSM}}}first").get("index") == "0"
    out = await ask(world, query(fields={"{urn:xmpp:fulltext:0}fulltext": "cheese"},
                                 rsm=f"<set xmlns='{RSM}'><max>2</max><after>{ids[1]}</after></set>"))
    assert len(out) == 2 and out[-1].find(f"{{{MAM}}}fin").get("complete") == "true"
    last = out[0].find(f".//{{{PSE}}}item")
    assert last.get("id") == "p2"
    empty = await ask(world, query(fields={"start": "2999-01-01T00:00:00Z"}))
    assert len(empty) == 1 and empty[0].find(f"{{{MAM}}}fin").get("complete") == "true"
    assert empty[0].findtext(f".//{{{RSM}}}count") == "0"


@pytest.mark.parametrize("payload, etype, condition", [
    (query(fields={"colour": "red"}), "modify", "bad-request"),
    (query(fields={"start": "yesterday"}), "modify", "bad-request"),
    (query(fields={"start": "2026-01-01T00:00:00"}), "modify", "bad-request"),
    (query(fields={}, form_type="urn:xmpp:mam:1"), "modify", "bad-request"),
    (query(fields={"fulltext": "x" * 300}), "modify", "bad-request"),
    (query(node=None), "modify", "bad-request"),
    (query(rsm=f"<set xmlns='{RSM}'><max>many</max></set>"), "modify", "bad-request"),
    (query(rsm=f"<set xmlns='{RSM}'><after>1</after><before>2</before></set>"), "modify", "bad-request"),
    (query(rsm=f"<set xmlns='{RSM}'><after>p0</after></set>"), "cancel", "item-not-found"),
    (query(fields={"with": "bob@example.org"}), "cancel", "feature-not-implemented"),
    (query(rsm=f"<set xmlns='{RSM}'><index>2</index></set>"), "cancel", "feature-not-implemented"),
    (query().replace("</query>", "<flip-page/></query>"), "cancel", "feature-not-implemented"),
    (query(node=f"{MB}:comments/nope"), "cancel", "item-not-found"),
    (query(node="other"), "cancel", "item-not-found"),
])
async def test_bad_queries(world, payload, etype, condition):
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text="hi", item_id="p0"))
    out = await ask(world, payload)
    assert len(out) == 1 and out[0].get("type") == "error", "no results go out before a refusal"
    kind, children = error_of(out[0])
    assert (kind, children[0]) == (etype, f"{{{STANZAS}}}{condition}")


async def test_unreadable_nodes_answer_as_items_requests(world):
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text="secret", item_id="p0"))
    await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="whitelist"))
    for node in (MB, f"{MB}:comments/p0", f"{MB}:comments/nope"):
        items_reply = await world.iq(f"{BOB}/pc", BLOG, "get", items(node))
        out = await ask(world, query(node=node))
        assert len(out) == 1
        assert error_of(out[0]) == error_of(items_reply), node
    out = await ask(world, query(node=MB), to="nobody@blog.example.org")
    assert error_of(out[0])[1][0] == f"{{{STANZAS}}}item-not-found"
    # the owner reads it, with full text too (a scan: the index never holds a protected blog)
    out = await ask(world, query(), frm=f"{ALICE}/pc")
    assert len(out) == 2 and out[-1].find(f"{{{MAM}}}fin").get("complete") == "true"
    out = await ask(world, query(fields={"fulltext": "nothing-like-it"}), frm=f"{ALICE}/pc")
    assert len(out) == 1 and out[-1].find(f"{{{MAM}}}fin").get("complete") == "true"
