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

import asyncio
import base64
import copy
import hashlib
import logging
import xml.etree.ElementTree as ET
from datetime import datetime

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


#: every worker serves the keys node from the database, read again when older than this
KEYS_CACHE_SECONDS = 30.0
#: a new key signs once it is this old: by then every worker's keys node lists it (its cache
#: was filled after the key was stored), with as much again for machines' clocks that differ
KEY_PUBLISHED_SECONDS = 2 * KEYS_CACHE_SECONDS


class Signer:
    """This server's keys, as every worker of it sees them: the first made at the first start,
    new ones added by `rotate` (`xmppblog rotate-key`, another process), all published.

    A worker signs with the newest key that has been stored for KEY_PUBLISHED_SECONDS (the
    first key at once: nothing was signed before it), and learns of new keys by reading the
    newest key id again at most every KEYS_CACHE_SECONDS (`refresh`, `run`). So a peer that
    fetches the keys node, from whichever worker serves it, finds every key any worker signs
    with (federation/verify.py refreshes a peer's keys when it sees an unknown key id).
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._private: Ed25519PrivateKey | None = None
        self.key_id = ""
        self.public: dict[str, bytes] = {}
        #: (key id, private key, stored at), oldest first
        self._keys: list[tuple[str, str, datetime]] = []
        self._checked: datetime | None = None

    async def load(self) -> None:
        """Read the keys; on an empty database make the first one (once, however many workers
        start together)."""
        async with self._uow() as uow:
            keys = list(await uow.keys.all())
        if not keys:
            keys = await self._first_key()
        self._use(keys)

    async def _first_key(self) -> list[tuple[str, str, str, bool, datetime]]:
        async with self._uow() as uow:
            # Workers starting together on an empty database: one makes the key, the others
            # wait for it and find it (each signing with a key of its own would leave peers
            # unable to verify the posts of all but one).
            await uow.keys.lock()
            keys = list(await uow.keys.all())
            if not keys:
                key_id, private, public = _generate()
                await uow.keys.add(key_id, private, public, self._clock.now())
                keys = list(await uow.keys.all())
                log.info("signing key created: id=%s", key_id)
            await uow.commit()
        return keys

    async def rotate(self) -> str:
        """Make a new signing key; older ones stay published so old posts still verify.

        Running workers sign with it once it has been published for KEY_PUBLISHED_SECONDS.
        """
        key_id, private, public = _generate()
        async with self._uow() as uow:
            await uow.keys.add(key_id, private, public, self._clock.now())
            await uow.commit()
        log.info("signing key created: id=%s (signs in %.0fs, when every worker publishes it)", key_id,
                 KEY_PUBLISHED_SECONDS)
        await self.load()
        return key_id

    async def refresh(self) -> None:
        """Pick up keys another process added (at most one read every KEYS_CACHE_SECONDS) and
        sign with the newest that has been published long enough."""
        now = self._clock.now()
        if self._checked is None or (now - self._checked).total_seconds() >= KEYS_CACHE_SECONDS:
            async with self._uow() as uow:
                newest = await uow.keys.newest()
                keys = list(await uow.keys.all()) if newest != (self._keys[-1][0] if self._keys else None) else None
            if keys is not None:
                self._use(keys, now)
            self._checked = now
        self._choose(now)

    async def run(self) -> None:
        """Refresh every KEYS_CACHE_SECONDS until cancelled (a rotated key signs without a restart)."""
        while True:
            await asyncio.sleep(KEYS_CACHE_SECONDS)
            try:
                await self.refresh()
            except Exception:  # the keys in hand still sign; try again next time
                log.warning("signing keys: could not read them again", exc_info=True)

    def _use(self, keys: list[tuple[str, str, str, bool, datetime]], now: datetime | None = None) -> None:
        now = now or self._clock.now()
        self.public = {k: base64.b64decode(pub) for k, _, pub, _, _ in keys}
        self._keys = [(k, private, at) for k, private, _, _, at in keys]
        self._checked = now
        self._choose(now)

    def _choose(self, now: datetime) -> None:
        if not self._keys:
            return  # not loaded yet
        published = [k for k in self._keys if (now - k[2]).total_seconds() >= KEY_PUBLISHED_SECONDS]
        key_id, private, _ = published[-1] if published else self._keys[0]
        if key_id != self.key_id:
            if self.key_id:
                log.info("signing with key %s (was %s)", key_id, self.key_id)
            self.key_id = key_id
            self._private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private))

    def sign(self, entry: ET.Element) -> None:
        """Append this server's signature to `entry` (replacing any claimed one)."""
        if self._private is None:
            raise RuntimeError("Signer.load() was not awaited")
        for old in entry.findall(SIG):
            entry.remove(old)
        signature = self._private.sign(canonical(entry))
        el = ET.SubElement(entry, SIG, {"key": self.key_id, "algorithm": "ed25519"})
        el.text = base64.b64encode(signature).decode()

    async def key_items(self) -> list[tuple[str, ET.Element]]:
        """The items of the keys node: every key in the database, as read at most
        KEYS_CACHE_SECONDS ago (another worker may have made or started signing with one)."""
        await self.refresh()
        out = []
        for key_id, raw in self.public.items():
            el = ET.Element(KEY, {"algorithm": "ed25519", "active": "true" if key_id == self.key_id else "false"})
            el.text = base64.b64encode(raw).decode()
            out.append((key_id, el))
        return out


def _generate() -> tuple[str, str, str]:
    """A new Ed25519 key: (key id, private key, public key), raw bytes in base64."""
    private = Ed25519PrivateKey.generate()
    priv_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    pub_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key_id_of(pub_raw), base64.b64encode(priv_raw).decode(), base64.b64encode(pub_raw).decode()


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
