# SPDX-License-Identifier: AGPL-3.0-or-later
"""Finding the host's XEP-0033 multicast service and its address limit (xmpp/multicast.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppblog.xmpp.multicast import DEFAULT_LIMIT, MAX_LIMIT, Multicast, discover, message_limit

INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"


def info(*features: str, form: dict[str, str] | None = None, form_type: str = "http://jabber.org/protocol/address"):
    xml = f"<query xmlns='{INFO}'>" + "".join(f"<feature var='{f}'/>" for f in features)
    if form is not None:
        xml += (f"<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
                f"<value>{form_type}</value></field>"
                + "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in form.items()) + "</x>")
    return ET.fromstring(xml + "</query>")


def items(*jids: str):
    return ET.fromstring(f"<query xmlns='{ITEMS}'>" + "".join(f"<item jid='{j}'/>" for j in jids) + "</query>")


def test_message_limit_from_the_service_form():
    assert message_limit(info(form={"message": "50", "presence": "7"})) == 50
    assert message_limit(info(form={"message": "infinite"})) == MAX_LIMIT
    assert message_limit(info(form={"message": "100000"})) == MAX_LIMIT
    assert message_limit(info(form={"message": "0"})) is None
    assert message_limit(info(form={"message": "lots"})) is None
    assert message_limit(info(form={"presence": "7"})) is None
    assert message_limit(info(form={"message": "50"}, form_type="urn:other")) is None
    assert message_limit(info()) is None


def fake(answers):
    asked = []

    async def ask(to, ns):
        asked.append((to, ns))
        return answers.get((to, ns))
    return ask, asked


async def test_discover_prefers_the_host_then_its_items_and_gives_up_cleanly():
    address = "http://jabber.org/protocol/address"
    ask, _ = fake({("e.org", INFO): info(address, form={"message": "64"})})
    assert await discover(ask, "e.org") == Multicast("e.org", 64)

    ask, asked = fake({("e.org", INFO): info("urn:xmpp:ping"),
                       ("e.org", ITEMS): items("pubsub.e.org", "alice@e.org", "multicast.e.org"),
                       ("pubsub.e.org", INFO): info("http://jabber.org/protocol/pubsub"),
                       ("multicast.e.org", INFO): info(address)})
    assert await discover(ask, "e.org") == Multicast("multicast.e.org", DEFAULT_LIMIT)
    assert ("alice@e.org", INFO) not in asked, "only services (bare domains) are asked"

    ask, _ = fake({("e.org", INFO): info(), ("e.org", ITEMS): items("pubsub.e.org")})
    assert await discover(ask, "e.org") is None
    ask, _ = fake({})  # every query answered with an error or not at all
    assert await discover(ask, "e.org") is None
