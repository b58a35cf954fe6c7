# SPDX-License-Identifier: AGPL-3.0-or-later
"""Signed posts: keys generated once, rotated, entries signed at publish and verified."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppblog.core.model import NS_MICROBLOG, NodeRef
from xmppblog.pubsub.signing import SIG, Signer, canonical, parse_keys, verify

from .test_service_storage import ALICE, BOB, draft


async def test_keys_sign_verify_tamper_rotate(backend):
    service, uow, clock = backend
    signer = Signer(uow, clock)
    await signer.load()
    first = signer.key_id
    assert first and list(signer.public) == [first]
    again = Signer(uow, clock)
    await again.load()
    assert again.key_id == first, "the key is stored, not regenerated at each start"

    service._codec.signer = signer  # the codec signs what it stamps
    ref = NodeRef("alice@blog.example.org", NS_MICROBLOG)
    item = await service.publish(ALICE, ref, None, draft("signed words"))
    payload = (await service.get_items(BOB, ref, [item])).items[0].payload
    entry = ET.fromstring(payload)
    assert entry.find(SIG).get("key") == first
    assert verify(entry, signer.public) is None
    # tampering with anything signed breaks it; removing the signature is caught too
    tampered = ET.fromstring(payload.replace("signed words", "signed w0rds"))
    assert verify(tampered, signer.public) == "bad-signature"
    bare = ET.fromstring(payload)
    bare.remove(bare.find(SIG))
    assert verify(bare, signer.public) == "missing-signature"
    assert verify(entry, {}) == "unknown-signing-key"
    # rotation: new posts use the new key, old ones still verify with the published old key
    second = await signer.rotate()
    assert second != first and set(signer.public) == {first, second}
    items = [ET.fromstring(f"<item xmlns='http://jabber.org/protocol/pubsub' id='{k}'/>") for k, _ in signer.key_items()]
    for it, (_, key) in zip(items, signer.key_items(), strict=True):
        it.append(key)
    published = parse_keys(items)
    assert verify(entry, published) is None
    new = ET.fromstring((await service.get_items(BOB, ref, [await service.publish(ALICE, ref, None, draft("x"))]))
                        .items[0].payload)
    assert new.find(SIG).get("key") == second and verify(new, published) is None


def test_canonical_form_ignores_serialisation_details():
    a = ET.fromstring("<entry xmlns='http://www.w3.org/2005/Atom'><title a='1' b='2'>t</title></entry>")
    b = ET.fromstring('<x:entry xmlns:x="http://www.w3.org/2005/Atom"><x:title b="2" a="1">t</x:title></x:entry>')
    assert canonical(a) == canonical(b)


def test_canonical_form_leaves_out_the_signature_and_leaves_the_entry_alone():
    signed = ET.fromstring("<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title>"
                           "<signature xmlns='urn:xmppblog:0' key='k' algorithm='ed25519'>AAAA</signature></entry>")
    bare = ET.fromstring("<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry>")
    before = ET.tostring(signed)
    assert canonical(signed) == canonical(bare)
    assert ET.tostring(signed) == before, "the received entry keeps its signature"
