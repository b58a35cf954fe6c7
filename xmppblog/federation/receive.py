# SPDX-License-Identifier: AGPL-3.0-or-later
"""What must be true of a remote entry before it is stored: one path for pushes and fetched pages
(adapter layer).

An entry from another server, pushed (federation/inbound.py) or fetched at
subscribe and resync time (federation/remote.py), goes through the same
steps: an item id and a valid Atom entry, a signature that verifies when the
origin is an xmppblog server (federation/verify.py), markup made safe
(pubsub/sanitize.py, after the signature was checked), then the remote feeds
store it in one transaction, where the attribution rule decides whom it is
shown as (core/attribution.py). Every refusal is counted by spamguard.

An entry of another server's firehose (an aggregator's source) must also be
signed and carry its author's consent under that signature (docs/signatures.md):
otherwise it is dropped as `missing-signature` or `no-consent`.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from ..core import errors
from ..core.attribution import Claim
from ..core.remote_feeds import Incoming, Ingested, RemoteFeeds
from ..pubsub.sanitize import sanitize_entry
from ..protocol import NS_FIREHOSE
from ..pubsub.xep_0277 import DISCOVERABLE, AtomDraft, author_of, parse_entry
from ..spamguard.guard import Guard
from .verify import Verifier

log = logging.getLogger(__name__)


class EntryPipeline:
    def __init__(self, remote: RemoteFeeds, verifier: Verifier, guard: Guard, max_payload_bytes: int) -> None:
        self.remote = remote
        self.verifier = verifier
        self.guard = guard
        self.max_payload_bytes = max_payload_bytes

    async def receive(self, origin: str, node: str, items: list[ET.Element], retracts: list[str],
                      notify: bool = True) -> Ingested:
        """Check, verify and store the entries (and retractions) of one push or page of `node` at `origin`."""
        parsed: list[tuple[str, AtomDraft]] = []
        for item in items:
            item_id = item.get("id", "")
            if not item_id:
                self.guard.drop_item(origin, node, "", "no-item-id")
                continue
            try:
                parsed.append((item_id, parse_entry(item, self.max_payload_bytes)))
            except errors.BlogError as exc:
                self.guard.drop_item(origin, node, item_id, f"invalid-entry: {exc.text}")
        incoming = []
        if parsed:
            checks, users_domain = await self.verifier.check(origin, [d.entry for _, d in parsed])
            for (item_id, draft), checked in zip(parsed, checks, strict=True):
                if checked.reason:
                    self.guard.drop_item(origin, node, item_id, checked.reason)
                    continue
                if node == NS_FIREHOSE and (reason := _unconsented(draft, checked.signed)):
                    self.guard.drop_item(origin, node, item_id, reason)
                    continue
                sanitize_entry(draft.entry)
                incoming.append(Incoming(item_id, draft, Claim(item_id, author_of(draft.entry), checked.signed)))
        else:
            users_domain = None
        if not incoming and not retracts:
            return Ingested()
        result = await self.remote.ingest(origin, node, incoming, retracts, users_domain, notify)
        for item_id, reason in result.dropped:
            self.guard.drop_item(origin, node, item_id, reason)
        return result


def _unconsented(draft: AtomDraft, signed: bool) -> str:
    """Why a firehose entry may not be indexed here ('' if it may): it must be signed by its
    origin, and its author's consent must be under that signature."""
    if not signed:
        return "missing-signature"
    if draft.entry.find(DISCOVERABLE) is None:
        return "no-consent"
    return ""
