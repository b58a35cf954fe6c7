# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0060 Publish-Subscribe adapter: <pubsub/> requests -> PubsubService calls (adapter layer).

Dispatch is on (owner namespace?, iq type, action element), in the style of
Prosody's pubsub.lib.lua; each handler is named by its key (`set_publish`,
`owner_get_configure`). Handlers parse, call the service, and build the
result; refusals are domain errors mapped once in `pubsub/errors.py`.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import quoteattr

from ..core import errors
from ..core.model import NS_MICROBLOG, AccessModel, NodeConfig, NodeRef, Page, PageRequest
from ..core.pubsub import Limits, PubsubService
from ..protocol import (
    ATTACHMENTS_PREFIX,
    COMMENTS_PREFIX,
    NS_FIREHOSE,
    NS_KEYS_NODE,
    NS_NICK,
    NS_PUBSUB,
    NS_PUBSUB_NODE_CONFIG,
    NS_PUBSUB_OWNER,
    NS_PUBSUB_PUBLISH_OPTIONS,
    NS_PUBSUB_SUB_AUTH,
    NS_RSM,
)
from ..xmpp.component import FORM, BlogComponent, RawXml, Request, pubsub_action
from . import forms, xep_0059
from .signing import Signer
from .xep_0277 import parse_entry
from .xep_0470 import parse_attachments

log = logging.getLogger(__name__)

P = f"{{{NS_PUBSUB}}}"
#: entries of an owner list (subscriptions, affiliations) per page when the owner asks for no RSM max
OWNER_PAGE = 200
PO = f"{{{NS_PUBSUB_OWNER}}}"

Handler = Callable[[Request, ET.Element, ET.Element], Awaitable[ET.Element | None]]

ACCESS_LABELS = (("open", "Anyone"), ("presence", "Contacts the owner approved"),
                 ("authorize", "Approved subscribers"), ("whitelist", "Only listed members"))


def _node(el: ET.Element, required: bool = True) -> str:
    node = el.get("node", "")
    if required and not node:
        raise errors.NodeIdRequired("this request needs a node attribute")
    if len(node) > 1024:
        raise errors.BadRequest("node names are limited to 1024 characters")
    return node


#: Standard node_config fields (XEP-0060 §16.4.4) whose value is the same on every node here.
#: Clients send them whole (Libervia: persist_items, deliver_payloads, send_item_subscribe,
#: publish_model): that value is accepted as a no-op, another one refused, since the node would
#: not do what was asked. Booleans are compared as "true"/"false".
FIXED: dict[str, str] = {
    "pubsub#persist_items": "true",
    "pubsub#deliver_payloads": "true",
    "pubsub#deliver_notifications": "true",
    "pubsub#subscribe": "true",
    "pubsub#presence_based_delivery": "false",
    "pubsub#purge_offline": "false",
    "pubsub#tempsub": "false",
    "pubsub#node_type": "leaf",
    "pubsub#notification_type": "headline",
    "pubsub#publish_model": "publishers",  # the owner and publisher affiliates
}
#: On a post's comments node whoever may read the post may comment (what Libervia asks for).
FIXED_COMMENTS: dict[str, str] = {**FIXED, "pubsub#publish_model": "open"}
#: Standard fields that describe a node or ask for an extra the service does not send (last item
#: at subscription, configuration and subscription notices, XSLTs): ignored, as XEP-0004 lets a
#: form processor ignore fields it does not understand, so a client that sends them carries on.
IGNORED = frozenset({
    "pubsub#send_item_subscribe", "pubsub#send_last_published_item", "pubsub#notify_config",
    "pubsub#notify_sub", "pubsub#notify_delete", "pubsub#description", "pubsub#language",
    "pubsub#contact", "pubsub#type", "pubsub#body_xslt", "pubsub#dataform_xslt", "pubsub#itemreply",
    "pubsub#max_payload_size", "pubsub#roster_groups_allowed", "pubsub#item_expire", "pubsub#collection",
    "pubsub#children", "pubsub#children_association_policy", "pubsub#children_association_whitelist",
    "pubsub#children_max",
})
_BOOLEAN_FIXED = {var for var, value in FIXED.items() if value in ("true", "false")}


def config_changes(values: dict[str, list[str]], limits: Limits, strict: bool,
                   comments: bool = False) -> dict[str, object]:
    """NodeConfig changes from node_config / publish-options fields.

    Args:
        strict: unknown fields are an error (configure); publish-options ignores them.
        comments: the form is for a post's comments node (its fixed values differ).

    Raises:
        InvalidOptions: an unknown field (strict), a bad value, or a fixed field asked
            for another value (configure).
        PreconditionNotMet: a fixed field asked for another value (publish-options, §7.1.5).
    """
    fixed = FIXED_COMMENTS if comments else FIXED
    out: dict[str, object] = {}
    for var, vals in values.items():
        if var == "FORM_TYPE":
            continue
        v = vals[0] if vals else ""
        if var == "pubsub#access_model":
            try:
                out["access_model"] = AccessModel(v)
            except ValueError:
                raise errors.InvalidOptions(f"unsupported access model {v[:32]!r}") from None
        elif var == "pubsub#max_items":
            if v == "max":
                out["max_items"] = limits.max_items_per_node
            else:
                try:
                    out["max_items"] = forms.integer(v, "pubsub#max_items")
                except errors.BadRequest:
                    raise errors.InvalidOptions("pubsub#max_items must be a number or 'max'") from None
        elif var == "pubsub#notify_retract":
            out["notify_retract"] = forms.boolean(v, var)
        elif var == "pubsub#title":
            out["title"] = v[:256]
        elif var in fixed:
            given = ("true" if forms.boolean(v, var) else "false") if var in _BOOLEAN_FIXED else v
            if given != fixed[var]:
                text = f"{var} is always {fixed[var]!r} on this {'comments ' if comments else ''}node"
                if strict:
                    raise errors.InvalidOptions(text)
                raise errors.PreconditionNotMet(var, text)
        elif var in IGNORED:
            log.debug("configuration field ignored: %s", var)
        elif strict:
            raise errors.InvalidOptions(f"unsupported configuration field {var[:64]!r}")
        else:
            log.debug("publish-options field ignored: %s", var)
    return out


def config_form(node: str, config: NodeConfig, limits: Limits, form_type: str = "form") -> ET.Element:
    return (forms.Form(form_type, title=f"Configuration of {node}" if node else None)
            .field("FORM_TYPE", NS_PUBSUB_NODE_CONFIG, "hidden")
            .field("pubsub#title", config.title, "text-single", "A short name for the node")
            .field("pubsub#access_model", config.access_model.value, "list-single",
                   "Who may subscribe and read items", ACCESS_LABELS)
            .field("pubsub#max_items", config.max_items, "text-single",
                   f"Maximum number of items to keep (1-{limits.max_items_per_node})")
            .field("pubsub#notify_retract", config.notify_retract, "boolean",
                   "Notify subscribers when items are retracted")
            .field("pubsub#persist_items", True, "boolean", "Persist items to storage")
            .field("pubsub#deliver_payloads", True, "boolean", "Deliver payloads with notifications")
            # what the node does, stated (XEP-0472 base profile; Libervia reads publish_model)
            .field("pubsub#publish_model", (FIXED_COMMENTS if node.startswith((COMMENTS_PREFIX, ATTACHMENTS_PREFIX))
                                                 else FIXED)
                   ["pubsub#publish_model"], "list-single", "Who may publish",
                   [("publishers", "The owner and publishers"), ("open", "Whoever may read the post")])
            .field("pubsub#send_last_published_item", "never", "list-single",
                   "When to send the last published item", [("never", "Never")])
            .el)


def page_xml(node: str, page: Page, with_rsm: bool) -> RawXml:
    """A page of items, spliced from the stored payload strings: parsing 20 entries into
    a tree and serialising it again cost ~1 ms a page (W3 in bench/RESULTS.md).
    tests/adapters/test_xml.py proves it equal to the element-tree build."""
    parts = [f"<pubsub xmlns='{NS_PUBSUB}'><items node={quoteattr(node)}>"]
    for item in page.items:
        pub = f" publisher={quoteattr(item.publisher)}" if item.publisher else ""
        parts.append(f"<item id={quoteattr(item.item_id)}{pub}>{item.payload}</item>")
    parts.append("</items>")
    if with_rsm or not page.complete:
        parts.append(ET.tostring(xep_0059.render(page), encoding="unicode"))
    parts.append("</pubsub>")
    return RawXml("".join(parts))


class PubsubAdapter:
    """Routes <pubsub/> and <pubsub xmlns='…#owner'/> IQs to the service."""

    def __init__(self, service: PubsubService, signer: Signer) -> None:
        self.service = service
        self.limits = service.limits
        self.signer = signer
        self._user: dict[tuple[str, str], Handler] = {
            ("set", "publish"): self.set_publish,
            ("set", "retract"): self.set_retract,
            ("set", "subscribe"): self.set_subscribe,
            ("set", "unsubscribe"): self.set_unsubscribe,
            ("set", "create"): self.set_create,
            ("get", "items"): self.get_items,
            ("get", "subscriptions"): self.get_subscriptions,
            ("get", "affiliations"): self.get_affiliations,
        }
        self._owner: dict[tuple[str, str], Handler] = {
            ("get", "configure"): self.owner_get_configure,
            ("set", "configure"): self.owner_set_configure,
            ("get", "default"): self.owner_get_default,
            ("set", "purge"): self.owner_set_purge,
            ("set", "delete"): self.owner_set_delete,
            ("get", "subscriptions"): self.owner_get_subscriptions,
            ("set", "subscriptions"): self.owner_set_subscriptions,
            ("get", "affiliations"): self.owner_get_affiliations,
            ("set", "affiliations"): self.owner_set_affiliations,
        }

    def register(self, component: BlogComponent) -> None:
        for iq_type in ("get", "set"):
            component.on_iq(NS_PUBSUB, iq_type, self._dispatch_user)
            component.on_iq(NS_PUBSUB_OWNER, iq_type, self._dispatch_owner)
        component.on_message(FORM, self.on_message)

    async def _dispatch_user(self, req: Request, pubsub: ET.Element) -> ET.Element | None:
        return await self._dispatch(req, pubsub, self._user, P)

    async def _dispatch_owner(self, req: Request, pubsub: ET.Element) -> ET.Element | None:
        return await self._dispatch(req, pubsub, self._owner, PO)

    async def _dispatch(self, req: Request, pubsub: ET.Element, table: dict[tuple[str, str], Handler],
                        ns: str) -> ET.Element | None:
        if pubsub.tag.split("}")[-1] != "pubsub":
            raise errors.BadRequest("expected a <pubsub/> element")
        if req.to == self.service.addr.service_jid:
            items = pubsub.find(P + "items")
            if req.stanza["type"] == "get" and items is not None and items.get("node") == NS_KEYS_NODE:
                return await self._keys()
            if ns == P and pubsub.find(P + "create") is not None:
                # XEP-0060 §8.1.3: the service's nodes are its own; nobody creates one here
                raise errors.Forbidden(f"nodes are created on blogs (user@{self.service.addr.service_jid}), "
                                       "not on the service JID")
            if (not any(c.get("node") in (NS_MICROBLOG, NS_FIREHOSE) for c in pubsub)
                    and pubsub.find(P + "subscriptions") is None):
                raise errors.NodeNotFound(
                    f"the service JID hosts the public timeline ({NS_MICROBLOG}) and the firehose ({NS_FIREHOSE}); "
                    f"blogs live at user@{self.service.addr.service_jid}")
        action = pubsub_action(pubsub)
        if action is None:
            raise errors.BadRequest("expected exactly one pubsub action")
        key = (req.stanza["type"], action.tag[len(ns):])
        handler = table.get(key)
        if handler is None:
            raise errors.Unsupported(action.tag[len(ns):], f"{key[1]} ({key[0]}) is not supported")
        return await handler(req, pubsub, action)

    def _ref(self, req: Request, action: ET.Element) -> NodeRef:
        return NodeRef(req.to, _node(action))

    # ------------------------------------------------------------ user use cases

    async def set_publish(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ref = self._ref(req, el)
        items = el.findall(P + "item")
        if len(items) != 1:
            # XEP-0060 §7.1.3.6 requires exactly one item per publish request.
            raise errors.InvalidPayload("publish exactly one <item/>")
        item = items[0]
        item_id = item.get("id") or None
        if ref.is_attachments:  # XEP-0470: one <attachments/> per reader of the post
            payload = parse_attachments(item, self.limits.max_payload_bytes)
            new_id = await self.service.attach(req.actor, ref, item_id, payload)
        else:
            new_id = await self._publish_entry(req, pubsub, ref, item, item_id)
        ps = ET.Element(P + "pubsub")
        ET.SubElement(ET.SubElement(ps, P + "publish", {"node": ref.node}), P + "item", {"id": new_id})
        return ps

    async def _publish_entry(self, req: Request, pubsub: ET.Element, ref: NodeRef, item: ET.Element,
                             item_id: str | None) -> str:
        draft = parse_entry(item, self.limits.max_payload_bytes)
        options = None
        po = pubsub.find(P + "publish-options")
        if po is not None:
            ftype, values = forms.parse(po.find(forms.X))
            if forms.single(values, "FORM_TYPE") not in (None, NS_PUBSUB_PUBLISH_OPTIONS):
                raise errors.BadRequest("publish-options must use FORM_TYPE " + NS_PUBSUB_PUBLISH_OPTIONS)
            options = config_changes(values, self.limits, strict=False, comments=ref.is_comments)
        return await self.service.publish(req.actor, ref, item_id, draft, options)

    async def set_retract(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        ref = self._ref(req, el)
        items = el.findall(P + "item")
        if not items or not all(i.get("id") for i in items):
            raise errors.ItemRequired("retract needs <item id='…'/>")
        notify = el.get("notify")
        flag = None if notify is None else notify in ("1", "true")
        # XEP-0060 §7.2: several items are retracted together, or none of them
        await self.service.retract(req.actor, ref, [item.get("id", "") for item in items], flag)
        return None

    async def set_subscribe(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ref = self._ref(req, el)
        jid = el.get("jid")
        if not jid:
            raise errors.InvalidJid("subscribe needs a jid attribute")
        if pubsub.find(P + "options") is not None:
            raise errors.Unsupported("subscription-options", "subscription options are not supported")
        sub = await self.service.subscribe(req.actor, ref, jid)
        ps = ET.Element(P + "pubsub")
        ET.SubElement(ps, P + "subscription", {"node": ref.node, "jid": sub.jid,
                                                "subscription": sub.state.value})
        return ps

    async def set_unsubscribe(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        jid = el.get("jid")
        if not jid:
            raise errors.InvalidJid("unsubscribe needs a jid attribute")
        await self.service.unsubscribe(req.actor, self._ref(req, el), jid)
        return None

    async def set_create(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element | None:
        if not el.get("node"):
            raise errors.InstantNodesUnsupported("instant nodes are not supported: name the node")
        ref = self._ref(req, el)
        options: dict[str, object] = {}
        conf = pubsub.find(P + "configure")
        if conf is not None and conf.find(forms.X) is not None:
            _, values = forms.parse(conf.find(forms.X))
            options = config_changes(values, self.limits, strict=True, comments=ref.of_post)
        await self.service.create(req.actor, ref, options)
        return None

    async def get_items(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ref = self._ref(req, el)
        if ref.node == NS_NICK:
            return self._nick(ref)
        ids = [i.get("id", "") for i in el.findall(P + "item")]
        if any(not i for i in ids):
            raise errors.ItemRequired("<item/> in an items request needs an id")
        max_items = None
        if el.get("max_items") is not None:
            max_items = forms.integer(el.get("max_items", ""), "max_items")
        rsm = xep_0059.parse(pubsub)
        page = await self.service.get_items(req.actor, ref, ids, rsm or PageRequest(), max_items)
        return page_xml(ref.node, page, with_rsm=rsm is not None)

    async def _keys(self) -> ET.Element:
        """This server's public signing keys (pubsub/signing.py), readable by anyone."""
        ps = ET.Element(P + "pubsub")
        items = ET.SubElement(ps, P + "items", {"node": NS_KEYS_NODE})
        for key_id, key in await self.signer.key_items():
            ET.SubElement(items, P + "item", {"id": key_id}).append(key)
        return ps

    def _nick(self, ref: NodeRef) -> ET.Element:
        """XEP-0172 nickname of a blog JID, as a read-only PEP node: its owner's user name."""
        owner = self.service.owner_of(ref.service)
        ps = ET.Element(P + "pubsub")
        item = ET.SubElement(ET.SubElement(ps, P + "items", {"node": NS_NICK}), P + "item", {"id": "current"})
        ET.SubElement(item, f"{{{NS_NICK}}}nick").text = owner.split("@")[0]
        return ps

    async def get_subscriptions(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        node = _node(el, required=False) or None
        subs = await self.service.subscriptions_of(req.actor, req.to, node)
        ps = ET.Element(P + "pubsub")
        out = ET.SubElement(ps, P + "subscriptions", {"node": node} if node else {})
        for s in subs:
            ET.SubElement(out, P + "subscription", {"node": s.ref.node, "jid": s.jid,
                                                     "subscription": s.state.value})
        return ps

    async def get_affiliations(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        node = _node(el, required=False) or None
        affs = await self.service.affiliations_of(req.actor, req.to, node)
        ps = ET.Element(P + "pubsub")
        out = ET.SubElement(ps, P + "affiliations", {"node": node} if node else {})
        for ref, aff in affs:
            ET.SubElement(out, P + "affiliation", {"node": ref.node, "affiliation": aff.value})
        return ps

    # ------------------------------------------------------------ owner use cases

    async def owner_get_configure(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ref = self._ref(req, el)
        config = await self.service.get_config(req.actor, ref)
        ps = ET.Element(PO + "pubsub")
        ET.SubElement(ps, PO + "configure", {"node": ref.node}).append(
            config_form(ref.node, config, self.limits))
        return ps

    async def owner_set_configure(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        ref = self._ref(req, el)
        ftype, values = forms.parse(el.find(forms.X))
        if ftype == "cancel":
            return None
        if ftype != "submit":
            raise errors.BadRequest("submit the configuration form with type='submit'")
        if forms.single(values, "FORM_TYPE") not in (None, NS_PUBSUB_NODE_CONFIG):
            raise errors.InvalidOptions("FORM_TYPE must be " + NS_PUBSUB_NODE_CONFIG)
        await self.service.configure(req.actor, ref, config_changes(values, self.limits, strict=True,
                                                                     comments=ref.of_post))
        return None

    async def owner_get_default(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ps = ET.Element(PO + "pubsub")
        ET.SubElement(ps, PO + "default").append(
            config_form("", NodeConfig(max_items=self.limits.max_items_per_node), self.limits))
        return ps

    async def owner_set_purge(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        await self.service.purge(req.actor, self._ref(req, el))
        return None

    async def owner_set_delete(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        await self.service.delete_node(req.actor, self._ref(req, el))
        return None

    async def owner_get_subscriptions(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ref = self._ref(req, el)
        subs = await self.service.get_subscriptions(req.actor, ref)
        return self._owner_list(pubsub, "subscriptions", ref.node,
                                [(s.jid, {"jid": s.jid, "subscription": s.state.value}) for s in subs])

    def _owner_list(self, pubsub: ET.Element, what: str, node: str,
                    entries: list[tuple[str, dict[str, str]]]) -> ET.Element:
        """An owner list, a page at a time: RSM `max`/`after` when asked (by JID), else OWNER_PAGE
        entries, and never more than the page byte budget; a partial list says so with an RSM <set/>."""
        rsm = xep_0059.parse(pubsub) or PageRequest()
        start = 0
        if rsm.after:
            keys = [k for k, _ in entries]
            start = keys.index(rsm.after) + 1 if rsm.after in keys else len(entries)
        size = min(rsm.max if rsm.max is not None else OWNER_PAGE, OWNER_PAGE * 5)
        ps = ET.Element(PO + "pubsub")
        out = ET.SubElement(ps, PO + what, {"node": node})
        used, shown = 0, []
        for key, attrs in entries[start:start + size]:
            # as written: UTF-8 bytes, escapes included (a resource may hold '&' and '<')
            used += sum(len(quoteattr(v).encode("utf-8")) for v in attrs.values()) + 48
            if shown and used > self.limits.max_page_bytes:
                break
            ET.SubElement(out, PO + what[:-1], attrs)
            shown.append(key)
        if shown and (start or len(shown) < len(entries) or pubsub.find(f"{{{NS_RSM}}}set") is not None):
            s = ET.SubElement(ps, f"{{{NS_RSM}}}set")
            first = ET.SubElement(s, f"{{{NS_RSM}}}first", {"index": str(start)})
            first.text = shown[0]
            ET.SubElement(s, f"{{{NS_RSM}}}last").text = shown[-1]
            ET.SubElement(s, f"{{{NS_RSM}}}count").text = str(len(entries))
        return ps

    async def owner_set_subscriptions(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        ref = self._ref(req, el)
        changes = [(s.get("jid", ""), s.get("subscription", ""))
                   for s in el.findall(PO + "subscription")]
        if not changes or any(not j or not st for j, st in changes):
            raise errors.BadRequest("each <subscription/> needs jid and subscription attributes")
        await self.service.set_subscriptions(req.actor, ref, changes)
        return None

    async def owner_get_affiliations(self, req: Request, pubsub: ET.Element, el: ET.Element) -> ET.Element:
        ref = self._ref(req, el)
        affs = await self.service.get_affiliations(req.actor, ref)
        return self._owner_list(pubsub, "affiliations", ref.node,
                                [(jid, {"jid": jid, "affiliation": aff.value}) for jid, aff in affs.items()])

    async def owner_set_affiliations(self, req: Request, pubsub: ET.Element, el: ET.Element) -> None:
        ref = self._ref(req, el)
        changes = [(a.get("jid", ""), a.get("affiliation", ""))
                   for a in el.findall(PO + "affiliation")]
        if not changes or any(not j or not a for j, a in changes):
            raise errors.BadRequest("each <affiliation/> needs jid and affiliation attributes")
        await self.service.set_affiliations(req.actor, ref, changes)
        return None

    # ------------------------------------------------------------ §8.6 authorization answers

    async def on_message(self, req: Request) -> None:
        """The owner submits a subscription authorization form (XEP-0060 §8.6)."""
        x = req.xml.find(forms.X)
        if x is None or x.get("type") != "submit":
            return
        _, values = forms.parse(x)
        if forms.single(values, "FORM_TYPE") != NS_PUBSUB_SUB_AUTH:
            return
        node = forms.single(values, "pubsub#node")
        jid = forms.single(values, "pubsub#subscriber_jid")
        allow = forms.single(values, "pubsub#allow")
        if not node or not jid or allow is None:
            raise errors.BadRequest("the authorization form needs pubsub#node, "
                                    "pubsub#subscriber_jid and pubsub#allow")
        changed = await self.service.authorize(req.actor, NodeRef(req.to, node), jid,
                                               forms.boolean(allow, "pubsub#allow"))
        if not changed:
            log.info("authorization answer for no pending request: node=%s jid=%s by=%s",
                     node, jid, req.actor.jid)

