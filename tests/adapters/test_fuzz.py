# SPDX-License-Identifier: AGPL-3.0-or-later
"""Property-based: random and mutated pubsub/disco/command iqs and chat/presence stanzas always get a well-formed
result or a deliberate XMPP error — never an exception escaping into internal-server-error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PS = "http://jabber.org/protocol/pubsub"
NAMESPACES = [PS, PS + "#owner", "http://jabber.org/protocol/disco#info",
              "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/commands",
              "urn:xmpp:blocking", "vcard-temp", "urn:xmpp:ping", "urn:unknown"]
ACTIONS = ["publish", "retract", "subscribe", "unsubscribe", "items", "subscriptions", "affiliations",
           "create", "configure", "default", "purge", "delete", "options", "publish-options", "query",
           "command", "block", "unblock", "vCard", "ping", "item", "x", "set"]
ATTRS = ["node", "jid", "id", "max_items", "notify", "subscription", "affiliation", "action", "sessionid"]
odd_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=40)
values = st.one_of(odd_text, st.sampled_from(["urn:xmpp:microblog:0", "urn:xmpp:microblog:0:comments/p1",
                                              "alice@example.org", "bob@example.org/r", "-1", "0", "99999999999",
                                              "x'; DROP TABLE items; --", "", "max", "true"]))


def _clean(text: str) -> str:
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


@st.composite
def elements(draw, depth=0):
    tag = draw(st.sampled_from(ACTIONS))
    attrs = draw(st.dictionaries(st.sampled_from(ATTRS), values, max_size=3))
    attr_text = "".join(f" {k}={quoteattr(_clean(v))}" for k, v in attrs.items())
    children = draw(st.lists(elements(depth + 1), max_size=3)) if depth < 4 else []
    inner = "".join(children)
    if draw(st.booleans()) and depth > 0:
        inner += "<entry xmlns='http://www.w3.org/2005/Atom'><title>" + _clean(draw(odd_text)).replace(
            "&", "&amp;").replace("<", "&lt;") + "</title></entry>"
    return f"<{tag}{attr_text}>{inner}</{tag}>"


@st.composite
def stanzas(draw):
    ns = draw(st.sampled_from(NAMESPACES))
    root = draw(st.sampled_from(["pubsub", "query", "command", "block", "vCard", "ping"]))
    kids = "".join(draw(st.lists(elements(), max_size=3)))
    itype = draw(st.sampled_from(["get", "set"]))
    frm = draw(st.sampled_from(["alice@example.org/pc", "bob@example.org/pc", "mallory@evil.example/x"]))
    to = draw(st.sampled_from(["alice@blog.example.org", "blog.example.org", "bob@blog.example.org",
                               "bob\\40example.net@blog.example.org"]))
    return f"<iq type='{itype}' id='f1' from='{frm}' to='{to}'><{root} xmlns='{ns}'>{kids}</{root}></iq>", frm, to


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stanza=stanzas())
async def test_random_stanzas_never_escape_a_handler(wire, stanza):
    xml, frm, to = stanza
    reply = await wire.request(xml)
    assert reply.get("id") == "f1" and reply.get("to") == frm and reply.get("from") in (to, None)
    assert reply.get("type") in ("result", "error")
    if reply.get("type") == "error":
        err = reply.find("{jabber:component:accept}error")
        assert err is not None and err.get("type") in ("cancel", "modify", "auth", "wait")
        conditions = [c.tag.split("}")[1] for c in err if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")]
        assert "internal-server-error" not in conditions, ET.tostring(reply)


COMMANDS = ["help", "follow ", "unfollow ", "post ", "reply ", "repost ", "delete ", "timeline ", "search ",
            "track ", "untrack ", "block ", "unblock ", "whois ", "approve ", "deny ", "report ", "pause", "resume",
            "following", "followers", ""]
bodies = st.builds(lambda c, v: c + v, st.sampled_from(COMMANDS), st.one_of(values, odd_text))


@st.composite
def im_stanzas(draw):
    kind = draw(st.sampled_from(["message", "presence"]))
    frm = draw(st.sampled_from(["alice@example.org/pc", "bob@example.org", "mallory@evil.example/x",
                                "ALICE@EXAMPLE.ORG./pc"]))
    to = draw(st.sampled_from(["blog.example.org", "alice@blog.example.org", "bob@blog.example.org",
                               "bob\\40example.net@blog.example.org", "nobody@blog.example.org"]))
    kids = "".join(draw(st.lists(elements(), max_size=2)))
    if kind == "message":
        mtype = draw(st.sampled_from(["chat", "normal", "headline", "groupchat", "error", None]))
        body = _clean(draw(bodies)).replace("&", "&amp;").replace("<", "&lt;")
        attrs = f" type='{mtype}'" if mtype else ""
        return f"<message{attrs} id='m1' from='{frm}' to='{to}'><body>{body}</body>{kids}</message>"
    ptype = draw(st.sampled_from(["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe",
                                  "unavailable", "error", "bogus", None]))
    attrs = f" type='{ptype}'" if ptype else ""
    return f"<presence{attrs} id='p1' from='{frm}' to='{to}'>{kids}</presence>"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stanza=im_stanzas())
async def test_random_chat_and_presence_never_escape_a_handler(wire, stanza, caplog):
    caplog.clear()
    out = await wire.deliver(stanza)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], stanza
    for el in out:
        assert el.tag.split("}")[1] in ("message", "presence", "iq"), ET.tostring(el)
        if el.get("type") == "error":
            err = el.find("{jabber:component:accept}error")
            assert err is not None, ET.tostring(el)
            conditions = [c.tag.split("}")[1] for c in err]
            assert "internal-server-error" not in conditions, (stanza, ET.tostring(el))
