# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0050 ad-hoc commands (adapter layer): XEP-0060 §8.7 get-pending on blog JIDs; on
the service JID, search, `discoverable` for users of this server and the admins' commands.

Two steps: `execute` returns a form (get-pending: the owner's nodes with pending
subscriptions, and submitting it makes the service send one §8.6 authorization
form per pending subscriber). Sessions need no server state: the form says all.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

from ..core import errors
from ..core.model import NodeRef
from ..core.moderation import Moderation
from ..core.pubsub import PubsubService
from ..core.network import NetworkView
from ..core.search import SearchService
from ..core.social import SocialService
from ..core.status import DeliveryStatus, server_line
from ..core.uri import xmpp_uri
from ..protocol import NS_COMMANDS, NS_DATA, NS_PUBSUB_GET_PENDING, NS_PUBSUB_SUB_AUTH
from ..spamguard.guard import Guard
from ..xmpp.component import BlogComponent, Request
from . import forms
from .xep_0277 import summary

#: characters of a post's text in a search result form
RESULT_TEXT = 300

C = f"{{{NS_COMMANDS}}}"


#: admin commands on the service JID: node -> name
ADMIN_COMMANDS = {
    "xmppblog#spamguard-stats": "Spamguard: what was refused",
    "xmppblog#domain-block": "Block or unblock a domain",
    "xmppblog#domain-allow": "Add or remove an allowed domain (an allow list admits only those)",
    "xmppblog#domains": "List the run-time domain lists",
    "xmppblog#reports": "Recent abuse reports",
    "xmppblog#deliveries": "Deliveries to other servers: delivered, pending, retrying, failed",
}


SEARCH_COMMAND = "xmppblog#search"
#: a user's choice for network-wide indexes (core/discovery.py), as the chat `discoverable`
DISCOVERABLE_COMMAND = "xmppblog#discoverable"
#: the network-wide view (issue #17), as the chat's trends, directory and suggest
TRENDS_COMMAND, DIRECTORY_COMMAND, SUGGEST_COMMAND = "xmppblog#trends", "xmppblog#directory", "xmppblog#suggest"
NETWORK_COMMANDS = (TRENDS_COMMAND, DIRECTORY_COMMAND, SUGGEST_COMMAND)
#: commands on the service JID for every user of this server: node -> name
USER_COMMANDS = {
    SEARCH_COMMAND: "Search public posts",
    DISCOVERABLE_COMMAND: "Discoverable: may other servers' network-wide search and timelines show my posts?",
    TRENDS_COMMAND: "Trends: hashtags rising over the last hour and day",
    DIRECTORY_COMMAND: "Directory of discoverable users",
    SUGGEST_COMMAND: "Who to follow",
}


class CommandsAdapter:
    def __init__(self, service: PubsubService, moderation: Moderation, guard: Guard, search: SearchService,
                 status: DeliveryStatus | None = None, social: SocialService | None = None,
                 network: NetworkView | None = None) -> None:
        self.status = status
        self.social = social
        self.network = network
        self.service = service
        self.search = search
        self.moderation = moderation
        self.guard = guard

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_COMMANDS, "set", self.set_command)

    async def set_command(self, req: Request, cmd: ET.Element) -> ET.Element:
        node = cmd.get("node", "")
        if req.to == self.service.addr.service_jid and node == SEARCH_COMMAND:
            return await self.search_command(req, cmd)
        if req.to == self.service.addr.service_jid and node == DISCOVERABLE_COMMAND and self.social is not None:
            return await self.discoverable_command(req, cmd, self.social)
        if req.to == self.service.addr.service_jid and node in NETWORK_COMMANDS and self.network is not None:
            return await self.network_command(req, cmd, node, self.network)
        if req.to == self.service.addr.service_jid and node in ADMIN_COMMANDS:
            return await self.admin_command(req, cmd, node)
        if node != NS_PUBSUB_GET_PENDING or req.to == self.service.addr.service_jid:
            raise errors.NodeNotFound(f"no command {node[:64]!r} here")
        action = cmd.get("action", "execute")
        sessionid = cmd.get("sessionid") or secrets.token_hex(8)
        out = ET.Element(C + "command", {"node": node, "sessionid": sessionid})
        if action == "cancel":
            out.set("status", "canceled")
            return out
        x = cmd.find(forms.X)
        if x is None or action not in ("execute", "complete", "next"):
            pending = await self.service.pending(req.actor, req.to)
            if not pending:
                out.set("status", "completed")
                note = ET.SubElement(out, C + "note", {"type": "info"})
                note.text = "There are no pending subscription requests."
                return out
            out.set("status", "executing")
            ET.SubElement(ET.SubElement(out, C + "actions", {"execute": "complete"}), C + "complete")
            out.append(forms.Form("form", "Pending subscriptions",
                                  "Choose a node to receive its pending requests as approval forms.")
                       .field("FORM_TYPE", NS_PUBSUB_SUB_AUTH, "hidden")
                       .field("pubsub#node", None, "list-single", "Node",
                              [(n, f"{n} ({len(j)} pending)") for n, j in sorted(pending.items())])
                       .el)
            return out
        _, values = forms.parse(x)
        chosen = forms.single(values, "pubsub#node")
        if not chosen:
            raise errors.BadRequest("choose a node (pubsub#node)")
        count = await self.service.resend_pending(req.actor, NodeRef(req.to, chosen))
        out.set("status", "completed")
        note = ET.SubElement(out, C + "note", {"type": "info"})
        note.text = f"Sent {count} approval form(s)."
        return out

    # ------------------------------------------------------------ admin commands

    async def admin_command(self, req: Request, cmd: ET.Element, node: str) -> ET.Element:
        if not self.moderation.is_admin(req.actor):
            raise errors.Forbidden("only the administrators of this server may run this command")
        out, canceled = _opened(cmd, node)
        if canceled:
            return out
        x = cmd.find(forms.X)
        if node in ("xmppblog#domain-block", "xmppblog#domain-allow"):
            policy = "block" if node.endswith("block") else "allow"
            if x is None:
                out.set("status", "executing")
                ET.SubElement(ET.SubElement(out, C + "actions", {"execute": "complete"}), C + "complete")
                out.append(forms.Form("form", ADMIN_COMMANDS[node])
                           .field("domain", None, "text-single", "Domain")
                           .field("action", "add", "list-single", "Action", [("add", "Add"), ("remove", "Remove")])
                           .el)
                return out
            _, values = forms.parse(x)
            domain = forms.single(values, "domain") or ""
            on = (forms.single(values, "action") or "add") == "add"
            d, changed = await self.moderation.set_domain(req.actor, domain, policy, on)
            self.guard.apply_domain_policies(await self.moderation.domain_policies())
            return self._done(out, f"{'Added' if on else 'Removed'} {d} {'to' if on else 'from'} the {policy} list"
                                   + ("." if changed else " (no change)."))
        if node == "xmppblog#domains":
            policies = await self.moderation.domain_policies()
            lines = [f"{p}: {d}" for d, p in policies] or ["No run-time domain list entries."]
            allowed = sorted(self.guard.allowed) or "all"
            lines.append(f"in force: blocked {sorted(self.guard.blocked)}, allowed {allowed}")
            return self._done(out, "\n".join(lines))
        if node == "xmppblog#deliveries":
            views = await self.status.servers(req.actor) if self.status is not None else ()
            lines = [server_line(v) for v in views[:100]] or ["Nothing was sent to other servers lately."]
            if len(views) > 100:
                lines.append(f"… and {len(views) - 100} more servers (xmppblog stats lists them all)")
            return self._done(out, "\n".join(lines))
        if node == "xmppblog#reports":
            reporters = await self.moderation.reporters(req.actor)
            latest = await self.moderation.reports(req.actor, 10)
            lines = [f"{who}: {n} report(s) about {targets} JID(s), latest {at:%Y-%m-%d %H:%M}"
                     for who, n, targets, at in reporters]
            if latest:
                lines.append("latest reports:")
                lines += [f"  {at:%Y-%m-%d %H:%M} {who} reported {target} ({reason}) {text[:200]}".rstrip()
                          for who, target, reason, text, at in latest]
            return self._done(out, "\n".join(lines) or "No reports.")
        # spamguard-stats
        drops = await self.moderation.drops(req.actor)
        lines = [f"{n} × {reason} from {domain}" for reason, domain, n, _ in drops[:30]]
        lines.append(f"since start: {sum(self.guard.drops.values())} refused; most recent:")
        lines += [f"  {reason} {origin}" for _, reason, origin in list(self.guard.recent)[-10:]]
        return self._done(out, "\n".join(lines))

    async def search_command(self, req: Request, cmd: ET.Element) -> ET.Element:
        """Search public posts: a form, then results as a XEP-0004 multi-item form (author, date, id),
        each text clipped and the list cut at the page byte budget."""
        out, canceled = _opened(cmd, SEARCH_COMMAND)
        if canceled:
            return out
        x = cmd.find(forms.X)
        if x is None:
            out.set("status", "executing")
            ET.SubElement(ET.SubElement(out, C + "actions", {"execute": "complete"}), C + "complete")
            out.append(forms.Form("form", "Search public posts",
                                  'Words, "a phrase", #tag, @user@domain, from:user@domain')
                       .field("query", None, "text-single", "Query")
                       .field("order", "newest", "list-single", "Order",
                              [("newest", "Newest first"), ("relevance", "Most relevant first")]).el)
            return out
        _, values = forms.parse(x)
        found = await self.search.search(req.actor, forms.single(values, "query") or "", 20, 0,
                                         forms.single(values, "order") == "relevance")
        rows = [(p.item.publisher, p.item.published.isoformat(timespec="seconds"), p.item.item_id,
                 summary(p.item.payload)[:RESULT_TEXT], xmpp_uri(p.ref.service, p.ref.node, p.item.item_id))
                for p in found.posts]
        return self._table(out, f"{found.total_text} public post(s)", (("author", "Author"), ("published", "Date"),
                           ("id", "Post id"), ("text", "Text"), ("uri", "Link")), rows)

    def _table(self, out: ET.Element, title: str, columns: tuple[tuple[str, str], ...],
               rows: list[tuple[str, ...]]) -> ET.Element:
        """`out` completed with a XEP-0004 multi-item result form: `columns` (var, label) as its
        <reported/> header, then `rows`, cut at the page byte budget."""
        result = ET.Element(forms.X, {"type": "result"})
        ET.SubElement(result, f"{{{NS_DATA}}}title").text = title
        reported = ET.SubElement(result, f"{{{NS_DATA}}}reported")
        # XEP-0004 §3.4: the reported fields carry the type and label of the items' fields.
        for var, label in columns:
            ET.SubElement(reported, f"{{{NS_DATA}}}field", {"var": var, "label": label, "type": "text-single"})
        used = 0
        for row in rows:
            used += sum(len(v.encode()) for v in row) + 200
            if used > self.service.limits.max_page_bytes:
                break
            item = ET.SubElement(result, f"{{{NS_DATA}}}item")
            for (var, _), value in zip(columns, row, strict=True):
                f = ET.SubElement(item, f"{{{NS_DATA}}}field", {"var": var})
                ET.SubElement(f, f"{{{NS_DATA}}}value").text = value
        out.set("status", "completed")
        out.append(result)
        return out

    async def network_command(self, req: Request, cmd: ET.Element, node: str, network: NetworkView) -> ET.Element:
        """The network-wide view (issue #17): trends and suggestions at once; the directory after
        a form with an optional word."""
        out, canceled = _opened(cmd, node)
        if canceled:
            return out
        if node == TRENDS_COMMAND:
            hour, day = await network.trends()
            rows = [(window, f"#{t.tag}", str(t.now), str(t.before))
                    for window, trends in (("hour", hour), ("day", day)) for t in trends]
            return self._table(out, "Hashtags rising over the last hour and day", (
                ("window", "Window"), ("tag", "Tag"), ("authors", "Authors"), ("before", "Authors before")), rows)
        if node == SUGGEST_COMMAND:
            found = await network.suggestions(req.actor.jid)  # their own follows and tracked words
            return self._table(out, "You might follow", (("jid", "JID"), ("server", "Server"), ("why", "Why")),
                               [(s.jid, s.server, s.why) for s in found])
        x = cmd.find(forms.X)
        if x is None:
            out.set("status", "executing")
            ET.SubElement(ET.SubElement(out, C + "actions", {"execute": "complete"}), C + "complete")
            out.append(forms.Form("form", "Directory", "Discoverable users; optionally those whose JID has a word")
                       .field("word", None, "text-single", "Word").el)
            return out
        _, values = forms.parse(x)
        listed = await network.directory((forms.single(values, "word") or "")[:100])
        return self._table(out, f"{len(listed)} discoverable user(s)", (
            ("jid", "JID"), ("server", "Server"), ("posts", "Posts")),
            [(e.jid, e.server, str(e.posts)) for e in listed])

    async def discoverable_command(self, req: Request, cmd: ET.Element, social: SocialService) -> ET.Element:
        """A form with the user's choice (a boolean), then the new choice in a note."""
        out, canceled = _opened(cmd, DISCOVERABLE_COMMAND)
        if canceled:
            return out
        x = cmd.find(forms.X)
        if x is None:
            on = await social.discoverable(req.actor)  # Forbidden for users of other servers
            out.set("status", "executing")
            ET.SubElement(ET.SubElement(out, C + "actions", {"execute": "complete"}), C + "complete")
            out.append(forms.Form("form", "Discoverable",
                                  "May other servers' network-wide search and timelines show your public posts? "
                                  "On: your posts from now on. Off: every earlier one is withdrawn.")
                       .field("discoverable", "1" if on else "0", "boolean", "Discoverable").el)
            return out
        _, values = forms.parse(x)
        wanted = (forms.single(values, "discoverable") or "").strip().lower()
        if wanted not in ("1", "true", "0", "false"):
            raise errors.BadRequest("discoverable: a boolean (1/true or 0/false)")
        on = await social.discoverable(req.actor, wanted in ("1", "true"))
        return self._done(out, "Your public posts from now on are discoverable." if on else
                          "Your posts are not discoverable: every earlier one is withdrawn from the firehose.")

    @staticmethod
    def _done(out: ET.Element, text: str) -> ET.Element:
        out.set("status", "completed")
        ET.SubElement(out, C + "note", {"type": "info"}).text = text
        return out


def _opened(cmd: ET.Element, node: str) -> tuple[ET.Element, bool]:
    """The answer to a step of command `node`: its session id kept (or a new one), and whether
    the step cancels the session (the answer is then complete)."""
    out = ET.Element(C + "command", {"node": node, "sessionid": cmd.get("sessionid") or secrets.token_hex(8)})
    if cmd.get("action") == "cancel":
        out.set("status", "canceled")
        return out, True
    return out, False
