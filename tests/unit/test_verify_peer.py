# SPDX-License-Identifier: AGPL-3.0-or-later
"""What another xmppblog server may claim about itself (federation/verify.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppblog.core import errors
from xmppblog.federation import verify
from xmppblog.federation.verify import Verifier

INFO = ("<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:xmppblog:0'/>"
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmppblog:0</value>"
        "</field><field var='users_domain'><value>peer.example</value></field></x></query>")


class Requests:
    """Answers disco#info for the service; the users domain is silent, then lists it."""

    def __init__(self) -> None:
        self.domain_answers = False
        self.asked: list[str] = []

    async def get(self, to: str, payload: ET.Element) -> ET.Element:
        self.asked.append(to)
        if to == "blog.peer.example":
            return ET.fromstring(INFO)
        if not self.domain_answers:
            raise errors.RemoteUnavailable("timeout")
        return ET.fromstring("<query xmlns='http://jabber.org/protocol/disco#items'>"
                             "<item jid='Blog.Peer.Example'/></query>")


async def test_a_users_domain_that_did_not_answer_is_asked_again_within_minutes(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(verify.time, "monotonic", lambda: now[0])
    requests = Requests()
    verifier = Verifier(requests, None, None)  # type: ignore[arg-type]
    assert await verifier.users_domain("blog.peer.example") == ""  # unconfirmed: its own domain only
    requests.domain_answers = True
    now[0] += 60
    assert await verifier.users_domain("blog.peer.example") == "", "cached for a while"
    now[0] += verify.REFRESH_COOLDOWN
    assert await verifier.users_domain("blog.peer.example") == "peer.example", "asked again, and confirmed"
    asked = len(requests.asked)
    now[0] += verify.REFRESH_COOLDOWN * 2
    assert await verifier.users_domain("blog.peer.example") == "peer.example"
    assert len(requests.asked) == asked, "a confirmed answer is kept for PEER_TTL"
