# SPDX-License-Identifier: AGPL-3.0-or-later
"""Inbound pubsub events from other servers, as one linear pipeline (adapter layer).

Order as in Synapse's _handle_received_pdu: parse the event, let spamguard
check origin, consent and size (`Guard.check`), then hand the entries to the
entry pipeline (federation/receive.py: verify, attribute, persist in one
transaction). A real-time block list's events change the block list and
nothing else. Drops are silent; a service that keeps pushing a node we do not
follow is asked, rarely, to drop our stale subscription.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable

from ..core.model import NodeRef
from ..core.ports import RemoteDirectory
from ..core.remote_feeds import RemoteFeeds
from ..protocol import NS_PUBSUB_EVENT
from ..spamguard.guard import Guard, RemotePush
from ..xmpp.component import EVENT, BlogComponent, Request
from .receive import EntryPipeline

log = logging.getLogger(__name__)

EV = f"{{{NS_PUBSUB_EVENT}}}"
KINDS = ("items", "purge", "delete", "subscription")


class InboundEvents:
    def __init__(self, service_jid: str, guard: Guard, pipeline: EntryPipeline, remote: RemoteFeeds,
                 directory: RemoteDirectory) -> None:
        self.service_jid = service_jid
        self.guard = guard
        self.pipeline = pipeline
        self.remote = remote
        self.directory = directory
        #: told after a push changed a block list (a cluster's other workers reload theirs)
        self.blocklist_changed: Callable[[], None] = lambda: None

    def register(self, component: BlogComponent) -> None:
        component.on_message(EVENT, self.on_message)

    async def on_message(self, req: Request) -> None:
        event = req.xml.find(EV + "event")
        if event is None or req.to != self.service_jid:
            return
        children = [c for c in event if c.tag.startswith(EV) and c.tag[len(EV):] in KINDS]
        if not children:
            return
        child = children[0]
        kind, node, origin = child.tag[len(EV):], child.get("node", ""), req.sender
        items = [i for c in children for i in c.findall(EV + "item")]
        retracts = [r for c in children for r in c.findall(EV + "retract")]
        push = RemotePush(origin, node, len(items) + len(retracts), kind, len(children))
        verdict = await self.guard.check(push)
        if not verdict.accepted:
            if verdict.reason == "no-subscription" and self.guard.may_tell_to_stop(origin, node):
                log.info("unsolicited pushes: asking %s to unsubscribe us from %s", origin, node)
                await self.directory.unsubscribe(NodeRef(origin, node))
            return
        blocklists = self.guard.blocklists
        if blocklists.is_source(origin, node):
            blocklists.apply((origin, node), [i.get("id", "") for i in items if i.get("id")],
                             [r.get("id", "") for r in retracts if r.get("id")], purge=kind == "purge")
            self.blocklist_changed()
            return
        if kind == "items":
            await self.pipeline.receive(origin, node, items, [r.get("id", "") for r in retracts if r.get("id")])
        elif kind == "purge":
            await self.remote.purge(origin, node)
        elif kind == "delete" or (kind == "subscription" and _ends(child, self.service_jid)):
            log.info("remote node ended our subscription: origin=%s node=%s (%s)", origin, node, kind)
            await self.remote.ended(origin, node)


def _ends(child: ET.Element, service_jid: str) -> bool:
    """A subscription notification that says our (the service's) subscription is over."""
    return child.get("subscription") == "none" and child.get("jid", service_jid).split("/")[0] == service_jid
