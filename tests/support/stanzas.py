# SPDX-License-Identifier: AGPL-3.0-or-later
"""Stanza builders and scripted remote services for the wire-level scenarios (tests/support/world.py)."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

from .world import NS, stanza

PS = "http://jabber.org/protocol/pubsub"
PSO = PS + "#owner"
PSE = PS + "#event"
ATOM = "http://www.w3.org/2005/Atom"
MB = "urn:xmpp:microblog:0"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
XMPPBLOG = "urn:xmppblog:0"
KEYS_NODE = "urn:xmppblog:keys:0"


def entry(title: str, author: str | None = None, extra: str = "", content: str | None = None) -> str:
    parts = [f"<entry xmlns='{ATOM}'><title>{escape(title)}</title>"]
    if content is not None:
        parts.append(content)
    if author:
        parts.append(f"<author><name>{escape(author)}</name><uri>xmpp:{escape(author)}</uri></author>")
    parts.append(extra + "</entry>")
    return "".join(parts)


def publish(node: str = MB, text: str = "hello", item_id: str | None = None, raw_entry: str | None = None) -> str:
    attr = f" id={quoteattr(item_id)}" if item_id is not None else ""
    return (f"<pubsub xmlns='{PS}'><publish node={quoteattr(node)}><item{attr}>"
            f"{raw_entry or entry(text)}</item></publish></pubsub>")


def items(node: str = MB, ids: tuple[str, ...] = (), rsm: str = "") -> str:
    inner = "".join(f"<item id={quoteattr(i)}/>" for i in ids)
    return f"<pubsub xmlns='{PS}'><items node={quoteattr(node)}>{inner}</items>{rsm}</pubsub>"


def configure(node: str = MB, **fields: str) -> str:
    fs = "".join(f"<field var='pubsub#{k}'><value>{escape(v)}</value></field>" for k, v in fields.items())
    return (f"<pubsub xmlns='{PSO}'><configure node={quoteattr(node)}><x xmlns='jabber:x:data' type='submit'>"
            f"<field var='FORM_TYPE' type='hidden'><value>{PS}#node_config</value></field>{fs}</x>"
            "</configure></pubsub>")


def affiliations(changes: list[tuple[str, str]], node: str = MB) -> str:
    inner = "".join(f"<affiliation jid={quoteattr(j)} affiliation={quoteattr(a)}/>" for j, a in changes)
    return f"<pubsub xmlns='{PSO}'><affiliations node={quoteattr(node)}>{inner}</affiliations></pubsub>"


def subscriptions(changes: list[tuple[str, str]], node: str = MB) -> str:
    inner = "".join(f"<subscription jid={quoteattr(j)} subscription={quoteattr(s)}/>" for j, s in changes)
    return f"<pubsub xmlns='{PSO}'><subscriptions node={quoteattr(node)}>{inner}</subscriptions></pubsub>"


def subscribe(jid: str, node: str = MB) -> str:
    return f"<pubsub xmlns='{PS}'><subscribe node={quoteattr(node)} jid={quoteattr(jid)}/></pubsub>"


def event(frm: str, node: str, body: str, to: str = "blog.example.org", before: str = "") -> str:
    """A pubsub event message as the host delivers it; `before` goes ahead of the <event/>."""
    return (f"<message from={quoteattr(frm)} to={quoteattr(to)} type='headline'>{before}"
            f"<event xmlns='{PSE}'>{body}</event></message>")


def pushed(node: str, *entries: tuple[str, str]) -> str:
    """<items node=…> carrying (item id, entry XML) pairs."""
    return (f"<items node={quoteattr(node)}>"
            + "".join(f"<item id={quoteattr(i)}>{e}</item>" for i, e in entries) + "</items>")


def error_of(reply: ET.Element) -> tuple[str | None, str, str | None, str]:
    """(type, condition, pubsub#errors child, text) of an error reply."""
    assert reply.get("type") == "error", ET.tostring(reply)
    err = reply.find(f"{{{NS}}}error")
    assert err is not None
    cond = next(c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{STANZAS}}}") and not c.tag.endswith("text"))
    app = next((c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{PS}#errors}}")), None)
    text = err.find(f"{{{STANZAS}}}text")
    return err.get("type"), cond, app, (text.text or "") if text is not None else ""


def published_id(reply: ET.Element) -> str:
    assert reply.get("type") == "result", ET.tostring(reply)
    item = reply.find(f".//{{{PS}}}item")
    assert item is not None
    return item.get("id", "")


def result(iq: ET.Element, payload: str = "") -> ET.Element:
    return stanza(f"<iq type='result' id={quoteattr(iq.get('id', ''))} from={quoteattr(iq.get('to', ''))} "
                  f"to={quoteattr(iq.get('from', ''))}>{payload}</iq>")


def iq_error(iq: ET.Element, condition: str = "item-not-found", etype: str = "cancel") -> ET.Element:
    return stanza(f"<iq type='error' id={quoteattr(iq.get('id', ''))} from={quoteattr(iq.get('to', ''))} "
                  f"to={quoteattr(iq.get('from', ''))}><error type='{etype}'><{condition} xmlns='{STANZAS}'/>"
                  "</error></iq>")


def bodies(out: list[ET.Element], to: str | None = None) -> list[tuple[str, str]]:
    """(from, body) of every chat message in `out` (to `to`, if given)."""
    found = []
    for el in out:
        b = el.find(f"{{{NS}}}body")
        if el.tag == f"{{{NS}}}message" and b is not None and (to is None or el.get("to", "").split("/")[0] == to):
            found.append((el.get("from", ""), b.text or ""))
    return found


class PubsubPeer:
    """A scripted remote pubsub service: answers subscribes and item requests for its nodes,
    and (as an xmppblog server, if given a key) disco#info with urn:xmppblog:0 and its keys."""

    def __init__(self, service: str, signing_key: object | None = None, users_domain: str = "",
                 key_id: str = "k1") -> None:
        self.service = service
        self.key = signing_key
        self.key_id = key_id
        self.users_domain = users_domain
        self.items: dict[str, list[tuple[str, str]]] = {}
        self.asked: list[ET.Element] = []
        #: disco#info answers: 'xmppblog', 'plain' or 'timeout'
        self.disco = "xmppblog" if signing_key is not None else "plain"
        self.keys_answer = "keys"  # or 'timeout'
        #: whether the users domain lists this service in its disco#items (confirms the claim)
        self.confirmed = True

    def handles(self, iq: ET.Element) -> bool:
        to = iq.get("to", "")
        return to in (self.service, self.users_domain) or to.endswith("@" + self.service)

    def answer(self, iq: ET.Element) -> ET.Element | None:
        self.asked.append(iq)
        text = ET.tostring(iq, encoding="unicode")
        if iq.get("to") == self.users_domain and self.users_domain:
            # the users' own server: it lists the xmppblog service among its disco items
            if DISCO_ITEMS in text:
                listed = f"<item jid='{self.service}'/>" if self.confirmed else "<item jid='pubsub.elsewhere'/>"
                return result(iq, f"<query xmlns='{DISCO_ITEMS}'>{listed}</query>")
            return result(iq, f"<query xmlns='{DISCO_INFO}'><identity category='server' type='im'/></query>")
        if DISCO_INFO in text:
            if self.disco == "timeout":
                return None
            feats = f"<feature var='{XMPPBLOG}'/>" if self.disco == "xmppblog" else ""
            form = ""
            if self.disco == "xmppblog" and self.users_domain:
                form = ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
                        f"<value>{XMPPBLOG}</value></field><field var='users_domain'>"
                        f"<value>{self.users_domain}</value></field></x>")
            return result(iq, f"<query xmlns='{DISCO_INFO}'><identity category='pubsub' type='service'/>"
                              f"<feature var='{PS}'/>{feats}{form}</query>")
        if KEYS_NODE in text:
            if self.keys_answer == "timeout" or self.key is None:
                return None
            return result(iq, f"<pubsub xmlns='{PS}'><items node='{KEYS_NODE}'><item id='{self.key_id}'>"
                              f"<key xmlns='{XMPPBLOG}' algorithm='ed25519'>{public_b64(self.key)}</key>"
                              "</item></items></pubsub>")
        ps = iq.find(f"{{{PS}}}pubsub")
        if ps is None:
            return iq_error(iq, "service-unavailable")
        for child in ps:
            tag = child.tag.split("}")[1]
            node = child.get("node", "")
            if tag == "subscribe":
                return result(iq, f"<pubsub xmlns='{PS}'><subscription node={quoteattr(node)} "
                                  f"jid={quoteattr(child.get('jid', ''))} subscription='subscribed'/></pubsub>")
            if tag == "subscriptions":
                return result(iq, f"<pubsub xmlns='{PS}'><subscriptions node={quoteattr(node)}>"
                                  f"<subscription node={quoteattr(node)} jid='blog.example.org' "
                                  "subscription='subscribed'/></subscriptions></pubsub>")
            if tag == "unsubscribe":
                return result(iq)
            if tag == "items":
                inner = "".join(f"<item id={quoteattr(i)}>{e}</item>" for i, e in self.items.get(node, []))
                return result(iq, f"<pubsub xmlns='{PS}'><items node={quoteattr(node)}>{inner}</items></pubsub>")
            if tag == "publish":
                return result(iq, f"<pubsub xmlns='{PS}'><publish node={quoteattr(node)}><item id='r1'/>"
                                  "</publish></pubsub>")
        return iq_error(iq, "feature-not-implemented")

    def sign(self, entry_xml: str, key_id: str | None = None) -> str:
        """The entry with an xmppblog signature by this peer's key (pubsub/signing.py's format)."""
        el = ET.fromstring(entry_xml)
        for old in el.findall(f"{{{XMPPBLOG}}}signature"):
            el.remove(old)
        data = ET.canonicalize(ET.tostring(el, encoding="unicode")).encode()
        sig = ET.SubElement(el, f"{{{XMPPBLOG}}}signature",
                            {"key": key_id or self.key_id, "algorithm": "ed25519"})
        sig.text = base64.b64encode(self.key.sign(data)).decode()  # type: ignore[attr-defined]
        return ET.tostring(el, encoding="unicode")


def public_b64(key: object) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)  # type: ignore[attr-defined]
    return base64.b64encode(raw).decode()


def new_key() -> object:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.generate()


def responder(*peers: PubsubPeer) -> Callable[[ET.Element], ET.Element | None]:
    """Answers the server's IQs on behalf of `peers`; anything else gets no answer."""
    def answer(iq: ET.Element) -> ET.Element | None:
        for peer in peers:
            if peer.handles(iq):
                return peer.answer(iq)
        return None
    return answer
