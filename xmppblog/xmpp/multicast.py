# SPDX-License-Identifier: AGPL-3.0-or-later
"""The host's XEP-0033 multicast service, when it offers one (adapter layer).

A host such as ejabberd (mod_multicast) delivers one `<message/>` carrying an
`<addresses/>` list to every address on it. Handing a local fan-out over this
way costs the host one parse per chunk instead of one per follower. Discovery
follows XEP-0033 §3: the host domain itself, else the items of its disco#items
that advertise `http://jabber.org/protocol/address`. The per-stanza address
limit comes from the service's disco#info form (XEP-0128, FORM_TYPE
`http://jabber.org/protocol/address`); a service that states none gets
ejabberd's own default for senders outside its hosts, 20.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..protocol import NS_ADDRESS, NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS

#: addresses per stanza when the service states no limit (ejabberd's default for remote senders)
DEFAULT_LIMIT = 20
#: never more per stanza, whatever the service allows: keeps a chunk far below stanza size limits
MAX_LIMIT = 500

#: sends a disco query (`<query xmlns=…/>`) to a JID; the answer's <query/>, or None on error/timeout
Ask = Callable[[str, str], Awaitable[ET.Element | None]]


@dataclass(frozen=True, slots=True)
class Multicast:
    service: str   # the JID to send multicast stanzas to
    limit: int     # addresses per message stanza


def message_limit(info: ET.Element) -> int | None:
    """The `message` limit of a disco#info answer's address form; None if it states none."""
    for form in info.findall(f"{{{NS_DATA}}}x"):
        fields = {f.get("var"): (f.findtext(f"{{{NS_DATA}}}value") or "").strip()
                  for f in form.findall(f"{{{NS_DATA}}}field")}
        if fields.get("FORM_TYPE") != NS_ADDRESS or "message" not in fields:
            continue
        value = fields["message"]
        if value == "infinite":
            return MAX_LIMIT
        if value.isdigit() and int(value) > 0:
            return min(int(value), MAX_LIMIT)
        return None
    return None


def _service(jid: str, info: ET.Element | None) -> Multicast | None:
    """`jid` as the multicast service if its disco#info answer advertises XEP-0033."""
    if info is None or not any(f.get("var") == NS_ADDRESS for f in info.findall(f"{{{NS_DISCO_INFO}}}feature")):
        return None
    return Multicast(jid, message_limit(info) or DEFAULT_LIMIT)


async def discover(ask: Ask, domain: str) -> Multicast | None:
    """The multicast service of `domain` (XEP-0033 §3), or None if it has none."""
    found = _service(domain, await ask(domain, NS_DISCO_INFO))
    if found is not None:
        return found
    items = await ask(domain, NS_DISCO_ITEMS)
    for item in items.findall(f"{{{NS_DISCO_ITEMS}}}item") if items is not None else ():
        jid = item.get("jid", "")
        if not jid or item.get("node") or "@" in jid or "/" in jid:
            continue
        found = _service(jid, await ask(jid, NS_DISCO_INFO))
        if found is not None:
            return found
    return None
