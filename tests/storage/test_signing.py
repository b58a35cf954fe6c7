# SPDX-License-Identifier: AGPL-3.0-or-later
"""Signed posts: keys generated once, rotated, entries signed at publish and verified."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from xmppblog.core.model import NS_MICROBLOG, NodeRef
from xmppblog.pubsub.signing import (KEY_PUBLISHED_SECONDS, KEYS_CACHE_SECONDS, SIG, Signer, canonical, parse_keys,
                                     verify)
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

from .test_service_storage import ALICE, BOB, draft


async def keys_node(signer: Signer) -> dict[str, bytes]:
    """The keys a peer reads from the keys node as `signer`'s worker serves it."""
    items = []
    for key_id, key in await signer.key_items():
        item = ET.Element("{http://jabber.org/protocol/pubsub}item", {"id": key_id})
        item.append(key)
        items.append(item)
    return parse_keys(items)


async def signed_by(service, ref: NodeRef) -> str:  # type: ignore[no-untyped-def]
    """The key a new post on `ref` is signed with."""
    item = await service.publish(ALICE, ref, None, draft("which key?"))
    return ET.fromstring((await service.get_items(BOB, ref, [item])).items[0].payload).find(SIG).get("key")


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
    # rotation: the new key is published at once, and signs once every worker publishes it;
    # old posts still verify with the published old key
    second = await signer.rotate()
    assert second != first and set(signer.public) == {first, second}
    published = await keys_node(signer)
    assert set(published) == {first, second} and verify(entry, published) is None
    assert (await signed_by(service, ref)) == first, "not before every worker's keys node lists it"
    clock.advance(KEY_PUBLISHED_SECONDS)
    await signer.refresh()
    assert (await signed_by(service, ref)) == second
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


# ------------------------------------------------------------ many workers, one database (#16)

async def test_workers_starting_together_on_an_empty_database_make_one_key(stack, db_url):
    """Four workers start at once on an empty database: one first key, all sign with it."""
    _, uow, clock = stack
    # each worker its own engine (SQLite: one process, one engine, as in production)
    engines = [create_engine(db_url) for _ in range(4)] if db_url.startswith("postgresql") else []
    factories = [uow_factory(sessionmaker(e), clock) for e in engines] or [uow] * 4
    try:
        workers = [Signer(f, clock) for f in factories]
        await asyncio.gather(*(w.load() for w in workers))
    finally:
        for e in engines:
            await e.dispose()
    async with uow() as u:
        stored = [k[0] for k in await u.keys.all()]
    assert len(stored) == 1
    assert {w.key_id for w in workers} == set(stored)


async def test_every_worker_publishes_the_keys_any_worker_signs_with(stack):
    """Workers A and B run; `rotate-key` adds a key (another process). For three minutes, every
    few seconds, each worker refreshes on its own schedule and serves the keys node: whatever
    key either signs with is on both keys nodes, and within two minutes both sign with the new
    key, without a restart."""
    _, uow, clock = stack
    a, b = Signer(uow, clock), Signer(uow, clock)
    await a.load()
    clock.advance(17)  # B started (and read the keys) later
    await b.load()
    first = a.key_id
    assert b.key_id == first
    new = await Signer(uow, clock).rotate()  # xmppblog rotate-key
    switched = None
    for second in range(3, 180, 3):
        clock.advance(3)
        for worker, phase in ((a, 0), (b, 17)):
            if (second + phase) % 30 < 3:  # the periodic refresh (Signer.run), each on its own schedule
                await worker.refresh()
        served = [set(await keys_node(w)) for w in (a, b)]
        for signing in (a.key_id, b.key_id):
            assert all(signing in keys for keys in served), (second, signing, served)
        if switched is None and a.key_id == b.key_id == new:
            switched = second
    assert switched is not None and KEY_PUBLISHED_SECONDS <= switched <= KEY_PUBLISHED_SECONDS + 2 * KEYS_CACHE_SECONDS
    assert set(await keys_node(a)) == {first, new}, "old posts still verify"
