# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0277 entry validation and the server's stamp on stored entries."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from xmppblog.core import errors as E
from xmppblog.core.model import Stamp
from xmppblog.pubsub.xep_0277 import AtomCodec, parse_entry

ATOM = "http://www.w3.org/2005/Atom"
A = f"{{{ATOM}}}"


def item(inner: str) -> ET.Element:
    return ET.fromstring(f"<item xmlns='http://jabber.org/protocol/pubsub'>{inner}</item>")


STAMP = Stamp(item_id="x1", atom_id="xmpp:a@blog.e.org?;node=n;item=x1",
              published=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
              updated=datetime(2026, 1, 3, 0, 0, 0, tzinfo=UTC),
              author_jid="a@e.org", author_name="a", self_uri="xmpp:self",
              replies_uri="xmpp:replies")


def render(inner: str) -> ET.Element:
    return ET.fromstring(AtomCodec().render(parse_entry(item(inner), 65536), STAMP))


def test_stamp_replaces_client_claims():
    e = render(f"<entry xmlns='{ATOM}'><title>t</title><id>forged</id><published>1999-01-01T00:00:00Z</published>"
               f"<author><name>Alice A.</name><uri>xmpp:mallory@evil.org</uri></author>"
               f"<link rel='replies' href='xmpp:elsewhere'/><link rel='alternate' type='text/html' href='https://x/'/>"
               f"<category term='tag'/></entry>")
    assert e.find(A + "id").text == STAMP.atom_id
    assert e.find(A + "published").text == "2026-01-02T03:04:05Z"
    assert e.find(A + "updated").text == "2026-01-03T00:00:00Z"
    assert [a.find(A + "uri").text for a in e.findall(A + "author")] == ["xmpp:a@e.org"]
    assert e.find(A + "author/" + A + "name").text == "Alice A."
    links = [(link.get("rel"), link.get("href")) for link in e.findall(A + "link")]
    assert ("replies", "xmpp:replies") in links and ("replies", "xmpp:elsewhere") not in links
    assert ("alternate", "https://x/") in links and ("alternate", "xmpp:self") in links
    assert e.find(A + "category").get("term") == "tag"


def test_missing_title_is_derived_from_content():
    e = render(f"<entry xmlns='{ATOM}'><content>hello there</content></entry>")
    assert e.find(A + "title").text == "hello there"
    assert e.find(A + "author/" + A + "name").text == "a"


def test_thread_namespace_survives():
    e = render(f"<entry xmlns='{ATOM}' xmlns:thr='http://purl.org/syndication/thread/1.0'><title>r</title>"
               f"<thr:in-reply-to ref='tag:1' href='xmpp:x'/></entry>")
    assert e.find("{http://purl.org/syndication/thread/1.0}in-reply-to").get("ref") == "tag:1"


@pytest.mark.parametrize("inner,error", [
    ("", E.InvalidPayload),
    (f"<entry xmlns='{ATOM}'><title>a</title></entry><entry xmlns='{ATOM}'><title>b</title></entry>",
     E.InvalidPayload),
    ("<entry><title>no namespace</title></entry>", E.InvalidPayload),
    (f"<entry xmlns='{ATOM}'><title>  </title></entry>", E.InvalidPayload),
    (f"<entry xmlns='{ATOM}'><title type='image/png'>x</title></entry>", E.InvalidPayload),
    (f"<entry xmlns='{ATOM}'><title>t</title>" + "<x>" * 20 + "</x>" * 20 + "</entry>", E.InvalidPayload),
    (f"<entry xmlns='{ATOM}'><title>{'x' * 70000}</title></entry>", E.PayloadTooBig),
])
def test_bad_entries(inner, error):
    with pytest.raises(error):
        parse_entry(item(inner), 65536)
