# SPDX-License-Identifier: AGPL-3.0-or-later
"""Signed posts: Ed25519 signatures over a canonical form of each entry (adapter layer).

Every entry this server originates carries
`<signature xmlns='urn:xmppblog:0' key='KEY-ID' algorithm='ed25519'>BASE64</signature>`
as the last child of the Atom <entry/>. The signed bytes are the W3C Canonical
XML 2.0 form (xml.etree.ElementTree.canonicalize, text kept as is) of the
entry with every <signature/> of that namespace removed. Keys are published
as items of the node `urn:xmppblog:keys:0` on the service JID, item id = key
id, payload `<key xmlns='urn:xmppblog:0' algorithm='ed25519'>BASE64 raw public key</key>`.
A receiving xmppblog verifies entries from any service that publishes such
keys (README "Signed posts").
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import xml.etree.ElementTree as ET

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from ..core.ports import Clock, UnitOfWorkFactory
from ..protocol import NS_XMPPBLOG

log = logging.getLogger(__name__)

SIG = f"{{{NS_XMPPBLOG}}}signature"
KEY = f"{{{NS_XMPPBLOG}}}key"


def canonical(entry: ET.Element) -> bytes:
    """The bytes a signature covers: C14N 2.0 of the entry without its signature(s)."""
    clone = copy.copy(entry)  # shallow: its own child list, the children shared, `entry` untouched
    for sig in clone.findall(SIG):
        clone.remove(sig)
    return ET.canonicalize(ET.tostring(clone, encoding="unicode")).encode("utf-8")


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def verify(entry: ET.Element, keys: dict[str, bytes]) -> str | None:
    """None if `entry` carries a valid signature by one of `keys`, else the drop reason."""
    sigs = entry.findall(SIG)
    if not sigs:
        return "missing-signature"
    sig = sigs[-1]
    raw = keys.get(sig.get("key", ""))
    if raw is None or sig.get("algorithm", "ed25519") != "ed25519":
        return "unknown-signing-key"
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(sig.text or "", validate=True),
                                                       canonical(entry))
    except (InvalidSignature, ValueError):
        return "bad-signature"
    return None


class Signer:
    """Holds this server's keys: generates the first at start, rotates on demand."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._private: Ed25519PrivateKey | None = None
        self.key_id = ""
        self.public: dict[str, bytes] = {}

    async def load(self) -> None:
        async with self._uow() as uow:
            keys = list(await uow.keys.all())
        if not keys:
            await self.rotate()
            return
        self.public = {k: base64.b64decode(pub) for k, _, pub, _, _ in keys}
        active = [k for k in keys if k[3]][-1]
        self.key_id = active[0]
        self._private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(active[1]))

    async def rotate(self) -> str:
        """Make a new signing key; older ones stay published so old posts still verify."""
        private = Ed25519PrivateKey.generate()
        priv_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        pub_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key_id = key_id_of(pub_raw)
        async with self._uow() as uow:
            await uow.keys.add(key_id, base64.b64encode(priv_raw).decode(), base64.b64encode(pub_raw).decode(),
                               self._clock.now())
            await uow.commit()
        log.info("signing key created: id=%s", key_id)
        await self.load()
        return key_id

    def sign(self, entry: ET.Element) -> None:
        """Append this server's signature to `entry` (replacing any claimed one)."""
        if self._private is None:
            raise RuntimeError("Signer.load() was not awaited")
        for old in entry.findall(SIG):
            entry.remove(old)
        signature = self._private.sign(canonical(entry))
        el = ET.SubElement(entry, SIG, {"key": self.key_id, "algorithm": "ed25519"})
        el.text = base64.b64encode(signature).decode()

    def key_items(self) -> list[tuple[str, ET.Element]]:
        out = []
        for key_id, raw in self.public.items():
            el = ET.Element(KEY, {"algorithm": "ed25519", "active": "true" if key_id == self.key_id else "false"})
            el.text = base64.b64encode(raw).decode()
            out.append((key_id, el))
        return out


def parse_keys(items: list[ET.Element]) -> dict[str, bytes]:
    """Public keys from the items of a peer's keys node."""
    keys = {}
    for item in items:
        key = item.find(KEY)
        if key is None or key.get("algorithm", "ed25519") != "ed25519":
            continue
        try:
            raw = base64.b64decode(key.text or "", validate=True)
        except ValueError:
            continue
        if len(raw) == 32 and item.get("id"):
            keys[item.get("id", "")] = raw
    return keys
