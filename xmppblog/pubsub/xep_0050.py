# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0050 ad-hoc commands on blog JIDs: XEP-0060 §8.7 get-pending (adapter layer).

Two steps: `execute` returns a form listing the owner's nodes with pending
subscriptions; submitting it makes the service send one §8.6 authorization
form per pending subscriber. Sessions need no server state: the form says all.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

from ..core import errors
from ..core.model import NodeRef
from ..core.service import BlogService
from ..xmpp.component import BlogComponent, Request
from ..xmpp.namespaces import NS_COMMANDS, NS_PUBSUB_GET_PENDING, NS_PUBSUB_SUB_AUTH
from . import forms

C = f"{{{NS_COMMANDS}}}"


class CommandsAdapter:
    def __init__(self, service: BlogService) -> None:
        self.service = service

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_COMMANDS, "set", self.set_command)

    async def set_command(self, req: Request, cmd: ET.Element) -> ET.Element:
        node = cmd.get("node", "")
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
