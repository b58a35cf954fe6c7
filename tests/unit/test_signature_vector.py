# SPDX-License-Identifier: AGPL-3.0-or-later
"""The test vector of docs/signatures.md is what the code signs and verifies: the page is
the contract third parties verify by (issue #17)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from xmppblog.pubsub.signing import canonical, key_id_of, verify

DOC = (Path(__file__).parents[2] / "docs" / "signatures.md").read_text()


def test_the_documented_vector_verifies_and_its_canonical_form_is_the_documented_one():
    blocks = re.findall(r"```xml\n(.*?)\n```", DOC.split("## Test vector", 1)[1], re.S)
    signed_entry, signed_bytes = blocks
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=" in DOC and key_id_of(public) == "56475aa75463474c"
    entry = ET.fromstring(signed_entry)
    assert canonical(entry).decode() == signed_bytes
    assert verify(entry, {"56475aa75463474c": public}) is None
    entry.remove(entry.find("{urn:xmppblog:0}discoverable"))
    assert verify(entry, {"56475aa75463474c": public}) == "bad-signature", "consent is under the signature"
