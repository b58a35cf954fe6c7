# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #8: a corpus of hostile stanzas (T8, T10, T12, T13) through a real Prosody.

Every stanza must be answered (an error or a correct result), nothing may crash a
handler (no "failed:" or traceback in the log) and the component may not lose its
own connection to the host. The report counts each. DTDs and entities (T9) never
get through Prosody's parser; tests/adapters cover them at the component's own parser.
"""

from __future__ import annotations

import asyncio
import time

from ..conftest import FIGURES
from ..support.mini import Mini
from .test_robustness import PS, component

ATOM = "http://www.w3.org/2005/Atom"
NODE = "urn:xmpp:microblog:0"


def iq(to: str, iq_id: str, body: str, kind: str = "set") -> str:
    return f"<iq type='{kind}' id='{iq_id}' to='{to}'>{body}</iq>"


def corpus(blog: str, service: str) -> list[tuple[str, str, str]]:
    """(name, expected answer: error | any, stanza); each stanza is one iq with its own id."""
    deep = "<a>" * 1000 + "x" + "</a>" * 1000
    entry = f"<entry xmlns='{ATOM}'><title>t</title></entry>"
    rsm = "http://jabber.org/protocol/rsm"
    shapes = [
        ("oversize entry (200 KB)", "error", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item><entry "
                                             f"xmlns='{ATOM}'><title>{'x' * 200_000}</title></entry></item>"
                                             "</publish></pubsub>"),
        ("1,000-deep nesting", "error", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item><entry xmlns='{ATOM}'>"
                                        f"<title>t</title><content>{deep}</content></entry></item></publish></pubsub>"),
        ("20,000 items in one publish", "error", f"<pubsub xmlns='{PS}'><publish node='{NODE}'>"
                                                 + "<item/>" * 20_000 + "</publish></pubsub>"),
        ("not Atom", "error", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item><x xmlns='urn:y'/></item>"
                              "</publish></pubsub>"),
        ("Atom without title", "any", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item><entry xmlns='{ATOM}'/>"
                                      "</item></publish></pubsub>"),
        ("two payloads", "error", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item>{entry}{entry}</item>"
                                  "</publish></pubsub>"),
        ("publish without node", "error", f"<pubsub xmlns='{PS}'><publish><item>{entry}</item></publish></pubsub>"),
        ("empty pubsub", "error", f"<pubsub xmlns='{PS}'/>"),
        ("SQL in item id (stored verbatim)", "result", f"<pubsub xmlns='{PS}'><publish node='{NODE}'>"
                                                       f"<item id=\"1'; DROP TABLE items;--\">{entry}</item>"
                                                       "</publish></pubsub>"),
        ("SQL in node name", "error", f"<pubsub xmlns='{PS}'><items node=\"x' OR '1'='1\"/></pubsub>"),
        ("huge item id", "error", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item id='{'i' * 5000}'>{entry}"
                                  "</item></publish></pubsub>"),
        ("control character in id", "error", f"<pubsub xmlns='{PS}'><items node='{NODE}'><item id='a&#9;b'/>"
                                             "</items></pubsub>"),
        ("max_items not a number", "error", f"<pubsub xmlns='{PS}'><items node='{NODE}' max_items='lots'/></pubsub>"),
        ("RSM max negative", "any", f"<pubsub xmlns='{PS}'><items node='{NODE}'/><set xmlns='{rsm}'><max>-5</max>"
                                    "</set></pubsub>"),
        ("unknown child", "error", "<frobnicate xmlns='urn:nobody'/>"),
    ]
    out = [(name, want, iq(blog, f"c{i}", body)) for i, (name, want, body) in enumerate(shapes)]
    # T13: addresses that differ only by case, Unicode form or a trailing dot (a read: harmless either way)
    local = blog.split("@")[0]
    for j, variant in enumerate((blog.upper(), blog.replace(local, "ＣＯＲＰＵＳ"), f"{local}@{service}.")):
        out.append((f"JID variant {variant}", "any",
                    iq(variant, f"v{j}", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", "get")))
    return out


async def test_hostile_corpus_gets_answers_and_never_costs_a_crash_or_disconnect(epsilon, tmp_path):
    comp = component(epsilon, tmp_path / "xmppblog", None)
    comp.start()
    c = Mini(epsilon.ip, epsilon.domain, "corpus")
    try:
        await c.connect()
        blog = f"corpus@{epsilon.component}"
        first = await c.request(iq(blog, "first", f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item>"
                                                  f"<entry xmlns='{ATOM}'><title>hello</title></entry></item>"
                                                  "</publish></pubsub>"))
        assert b"result" in first
        c.start_counting()
        stanzas = corpus(blog, epsilon.component)
        for _, _, stanza in stanzas:
            c.send(stanza)
            await asyncio.sleep(0.02)
        ids = [s.split("id='", 1)[1].split("'", 1)[0] for _, _, s in stanzas]
        end = time.monotonic() + 20
        while not all(i in c.replies for i in ids) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        unanswered = [name for (name, _, _), i in zip(stanzas, ids, strict=True) if i not in c.replies]
        wrong = [f"{name}: {c.replies.get(i)!r}" for (name, want, _), i in zip(stanzas, ids, strict=True)
                 if want != "any" and i in c.replies and c.replies[i] != want.encode()]
        # the service still works: a fresh client reads the first post back
        reader = Mini(epsilon.ip, epsilon.domain, "corpusreader")
        await reader.connect()
        ok = await reader.request(iq(blog, "after", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", "get"))
        await reader.close()
        log = comp.log_text(since_start=True)
        crashes = log.count("Traceback") + sum(1 for line in log.splitlines() if " failed: " in line)
        disconnects = log.count("disconnected from host server")
        FIGURES.append(("hostile corpus (T8, T10, T12, T13)", {"stanzas": len(stanzas), "answered": len(stanzas) -
                        len(unanswered), "crashes": crashes, "self_disconnects": disconnects}))
        assert not unanswered, unanswered
        assert not wrong, f"unexpected answers: {wrong}"
        assert b"result" in ok and b"hello" in ok
        assert crashes == 0 and disconnects == 0, log[-3000:]
        assert b"DROP TABLE items;--" in ok, "the metacharacter id is stored verbatim, the table intact"
    finally:
        await c.close()
        comp.stop()
