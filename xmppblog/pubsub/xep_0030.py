# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0030 Service Discovery for the service JID and blog JIDs (adapter layer).

Features are listed from what the adapters implement, nothing more. Node
info and node items pass the same access check as item retrieval, and a
node the requester may not read looks exactly like a missing one (T6).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .. import __version__
from ..core import errors
from ..core.model import NS_MICROBLOG, NodeRef, PageRequest
from ..core.pubsub import PubsubService
from ..xmpp.component import BlogComponent, Request
from ..protocol import (
    NS_BLOCKING,
    NS_COMMANDS,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_FIREHOSE,
    NS_FULLTEXT,
    NS_KEYS_NODE,
    NS_MAM,
    NS_PING,
    NS_PUBSUB,
    NS_PUBSUB_ATTACHMENTS,
    NS_PUBSUB_GET_PENDING,
    NS_PUBSUB_META_DATA,
    NS_REPORTING,
    NS_SOCIAL_FEED,
    NS_RSM,
    NS_VERSION,
    NS_XMPPBLOG,
)
from . import forms
from .xep_0050 import ADMIN_COMMANDS, USER_COMMANDS

DI = f"{{{NS_DISCO_INFO}}}"
DT = f"{{{NS_DISCO_ITEMS}}}"

#: XEP-0060 §10 features a blog JID implements (each one has a handler).
PUBSUB_FEATURES = (
    "access-authorize", "access-open", "access-presence", "access-whitelist",
    "auto-create", "config-node", "create-and-configure", "create-nodes",
    "delete-items", "delete-nodes", "get-pending", "item-ids",
    "manage-subscriptions", "member-affiliation", "meta-data", "modify-affiliations", "multi-items",
    "outcast-affiliation", "persistent-items", "publish", "publish-options",
    "publisher-affiliation", "purge-nodes", "retract-items", "retrieve-affiliations",
    "retrieve-default", "retrieve-items", "retrieve-subscriptions", "rsm", "subscribe",
    "subscription-notifications",
)
BLOG_FEATURES = (
    NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, NS_RSM, NS_COMMANDS, NS_PING, NS_VERSION, NS_MAM, NS_FULLTEXT,
    NS_PUBSUB_ATTACHMENTS,  # XEP-0470: each post has its attachments node
    NS_SOCIAL_FEED, *(f"{NS_PUBSUB}#{f}" for f in PUBSUB_FEATURES),
)
SERVICE_FEATURES = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, NS_PING, NS_VERSION, NS_XMPPBLOG, NS_COMMANDS,
                    NS_BLOCKING, NS_REPORTING, NS_MAM, NS_FULLTEXT, NS_SOCIAL_FEED)


def _info(identities: list[tuple[str, str, str]], features: tuple[str, ...],
          node: str | None = None) -> ET.Element:
    q = ET.Element(DI + "query", {"node": node} if node else {})
    for category, itype, name in identities:
        attrs = {"category": category, "type": itype}
        if name:
            attrs["name"] = name
        ET.SubElement(q, DI + "identity", attrs)
    for feature in sorted(set(features)):
        ET.SubElement(q, DI + "feature", {"var": feature})
    return q


class DiscoAdapter:
    def __init__(self, service: PubsubService, admins: frozenset[str] = frozenset()) -> None:
        self.service = service
        self.service_jid = service.addr.service_jid
        self.admins = admins

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_DISCO_INFO, "get", self.get_info)
        component.on_iq(NS_DISCO_ITEMS, "get", self.get_items)

    async def get_info(self, req: Request, query: ET.Element) -> ET.Element:
        node = query.get("node")
        if req.to == self.service_jid and node == NS_MICROBLOG:
            await self.service.visible_node(req.actor, self.service.timeline_ref)
            return _info([("pubsub", "leaf", "Public timeline")], (NS_PUBSUB, NS_MAM, NS_FULLTEXT), node)
        if req.to == self.service_jid and node == NS_FIREHOSE:
            return _info([("pubsub", "leaf", "Firehose")], (NS_PUBSUB, NS_MAM, NS_FULLTEXT), node)
        if req.to == self.service_jid:
            if node:
                raise errors.NodeNotFound("no such node on the service JID")
            q = _info([("pubsub", "service", "xmppblog"), ("component", "generic", "xmppblog")],
                      SERVICE_FEATURES)
            # XEP-0128: how this service maps users to blog JIDs (alice@<users_domain> -> alice@<service>).
            q.append(forms.Form("result")
                     .field("FORM_TYPE", NS_XMPPBLOG, "hidden")
                     .field("users_domain", self.service.addr.users_domain, "text-single")
                     # issue #17: the node of every discoverable post, for aggregators
                     .field("firehose", NS_FIREHOSE, "text-single")
                     .field("version", __version__, "text-single").el)
            return q
        owner = self.service.owner_of(req.to)
        if not node:
            return _info([("pubsub", "pep", f"Microblog of {owner}")], BLOG_FEATURES)
        if node == NS_COMMANDS:
            return _info([("automation", "command-list", "Commands")], (NS_COMMANDS,), node)
        if node == NS_PUBSUB_GET_PENDING:
            return _info([("automation", "command-node", "Get pending subscriptions")],
                         (NS_COMMANDS, "jabber:x:data"), node)
        n = await self.service.visible_node(req.actor, NodeRef(req.to, node))
        # XEP-0313 with full text on every node (the index or a bounded scan, core/archive.py)
        q = _info([("pubsub", "leaf", n.config.title or "")], (NS_PUBSUB, NS_MAM, NS_SOCIAL_FEED, NS_FULLTEXT), node)
        # No pubsub#owner (jid-multi; optional in XEP-0060 §5.4, and the blog JID names its owner
        # anyway): Libervia 0.9 turns jid fields into JID objects its D-Bus bridge cannot carry,
        # and fails the whole disco (tests/e2e/test_libervia.py). Prosody sends none either.
        meta = (forms.Form("result")
                .field("FORM_TYPE", NS_PUBSUB_META_DATA, "hidden")
                # XEP-0472 profiles: a user's blog is the microblog profile, the others its base
                .field("pubsub#type", NS_MICROBLOG if n.ref.node == NS_MICROBLOG and n.ref.service != self.service_jid
                       else NS_SOCIAL_FEED, "text-single", "Payload type")
                .field("pubsub#title", n.config.title, "text-single", "Title")
                .field("pubsub#access_model", n.config.access_model.value, "list-single", "Access model")
                # XEP-0472 wants "max": the most this server keeps (XEP-0060 §16.4.3)
                .field("pubsub#max_items", "max" if n.config.max_items >= self.service.limits.max_items_per_node
                       else n.config.max_items, "text-single", "Max items"))
        q.append(meta.el)
        return q

    async def get_items(self, req: Request, query: ET.Element) -> ET.Element:
        node = query.get("node")
        q = ET.Element(DT + "query", {"node": node} if node else {})
        if req.to == self.service_jid:
            if node == NS_COMMANDS:
                if self.service.addr.is_local_user(req.actor.jid):
                    for cmd_node, name in USER_COMMANDS.items():
                        ET.SubElement(q, DT + "item", {"jid": self.service_jid, "node": cmd_node, "name": name})
                if req.actor.jid in self.admins:
                    for cmd_node, name in ADMIN_COMMANDS.items():
                        ET.SubElement(q, DT + "item", {"jid": self.service_jid, "node": cmd_node, "name": name})
                return q
            if node:
                raise errors.NodeNotFound("no such node on the service JID")
            ET.SubElement(q, DT + "item", {"jid": self.service_jid, "node": NS_MICROBLOG,
                                           "name": "Public timeline: every public post of this server"})
            ET.SubElement(q, DT + "item", {"jid": self.service_jid, "node": NS_FIREHOSE,
                                           "name": "Firehose: every discoverable public post of this server, "
                                                   "for other servers' indexes"})
            ET.SubElement(q, DT + "item", {"jid": self.service_jid, "node": NS_KEYS_NODE,
                                           "name": "Signing keys of this xmppblog server"})
            return q
        self.service.owner_of(req.to)
        if node == NS_COMMANDS:
            if req.actor.jid == self.service.owner_of(req.to):
                ET.SubElement(q, DT + "item", {"jid": req.to_full, "node": NS_PUBSUB_GET_PENDING,
                                              "name": "Get pending subscriptions"})
            return q
        if not node:
            for n in await self.service.visible_nodes(req.actor, req.to):
                attrs = {"jid": req.to, "node": n.ref.node}
                if n.config.title:
                    attrs["name"] = n.config.title
                ET.SubElement(q, DT + "item", attrs)
            return q
        # XEP-0060 §5.5: the items of a node, as disco items named by item id.
        page = await self.service.get_items(req.actor, NodeRef(req.to, node), (),
                                            PageRequest(max=self.service.limits.max_page_items))
        for item in page.items:
            ET.SubElement(q, DT + "item", {"jid": req.to, "name": item.item_id})
        return q


class MiscAdapter:
    """XEP-0199 ping and XEP-0092 software version, for admins' diagnostics."""

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_PING, "get", self.ping)
        component.on_iq(NS_VERSION, "get", self.version)

    async def ping(self, req: Request, el: ET.Element) -> None:
        return None

    async def version(self, req: Request, el: ET.Element) -> ET.Element:
        q = ET.Element(f"{{{NS_VERSION}}}query")
        ET.SubElement(q, f"{{{NS_VERSION}}}name").text = "xmppblog"
        ET.SubElement(q, f"{{{NS_VERSION}}}version").text = __version__
        return q



