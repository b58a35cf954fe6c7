# SPDX-License-Identifier: AGPL-3.0-or-later
"""What an aggregator accepts from a source's firehose (federation/receive.py, issue #17):
only entries signed by the source with their author's consent under the signature. A
forged entry (no signature, a consent flag added after signing, no flag) is dropped and
counted by reason and source."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from xmppblog.core.remote_feeds import Ingested
from xmppblog.federation.receive import EntryPipeline
from xmppblog.federation.verify import Checked
from xmppblog.pubsub.signing import canonical, verify
from xmppblog.spamguard.guard import Guard

FIREHOSE = "urn:xmppblog:firehose:0"
SOURCE = "blog.source.example"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
KEYS = {"k1": KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)}


def item(item_id: str, consent: bool, sign: bool = True, add_flag_after: bool = False) -> ET.Element:
    entry = ET.fromstring("<entry xmlns='http://www.w3.org/2005/Atom'><title>hello</title>"
                          "<author><uri>xmpp:ann@source.example</uri></author></entry>")
    if consent:
        ET.SubElement(entry, "{urn:xmppblog:0}discoverable")
    if sign:
        sig = ET.SubElement(entry, "{urn:xmppblog:0}signature", {"key": "k1", "algorithm": "ed25519"})
        sig.text = base64.b64encode(KEY.sign(canonical(entry))).decode()
    if add_flag_after:
        entry.insert(1, ET.Element("{urn:xmppblog:0}discoverable"))
    el = ET.Element("item", {"id": item_id})
    el.append(entry)
    return el


class Verifier:
    """The source is an xmppblog server whose keys are KEYS (federation/verify.py's verdicts)."""

    async def check(self, origin, entries):
        return [Checked(p is None, p or "") for p in (verify(e, KEYS) for e in entries)], "source.example"


class Remote:
    def __init__(self) -> None:
        self.stored: list[str] = []

    async def ingest(self, origin, node, incoming, retracts, users_domain, notify):
        self.stored += [i.item_id for i in incoming]
        return Ingested(len(incoming))


async def test_only_signed_and_consented_entries_of_a_firehose_are_stored():
    remote = Remote()

    async def consent(origin, node):
        return True

    guard = Guard(consent, {"example.org"})
    pipeline = EntryPipeline(remote, Verifier(), guard, 65536)  # type: ignore[arg-type]
    await pipeline.receive(SOURCE, FIREHOSE, [
        item("ann/1", consent=True),
        item("ann/2", consent=False),                             # signed, but no consent
        item("ann/3", consent=True, sign=False),                  # no signature
        item("ann/4", consent=False, add_flag_after=True),        # consent added by a relay
    ], [])
    assert remote.stored == ["ann/1"]
    assert guard.drops[("no-consent", "blog.source.example")] == 1
    assert guard.drops[("missing-signature", "blog.source.example")] == 1
    assert guard.drops[("bad-signature", "blog.source.example")] == 1


async def test_a_followed_blog_needs_no_consent_flag():
    """Consent is about network-wide indexes: following one blog is the follower's own choice."""
    remote = Remote()

    async def consent(origin, node):
        return True

    pipeline = EntryPipeline(remote, Verifier(), Guard(consent, {"example.org"}), 65536)  # type: ignore[arg-type]
    await pipeline.receive("ann@blog.source.example", "urn:xmpp:microblog:0", [item("1", consent=False)], [])
    assert remote.stored == ["1"]
