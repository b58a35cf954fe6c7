# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0470 Pubsub Attachments: the payload of an attachments item (adapter layer).

A post's attachments node (core/model.py `NodeRef.attachments`) holds one item
per person, whose id is their bare JID, carrying one <attachments/> element
(noticed, reactions…). The service checks the element and its size; what is
inside is the clients' business.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..core import errors
from ..protocol import NS_PUBSUB_ATTACHMENTS
from .xep_0277 import serialise, within_depth

ATTACHMENTS = f"{{{NS_PUBSUB_ATTACHMENTS}}}attachments"
#: as deep as an <attachments/> element may nest (reactions are three levels)
MAX_DEPTH = 16


def parse_attachments(item: ET.Element, max_bytes: int) -> str:
    """The serialised <attachments/> element of a published <item/>.

    Raises:
        InvalidPayload: not exactly one <attachments xmlns='urn:xmpp:pubsub-attachments:1'/>,
            or nested too deep.
        PayloadTooBig: larger than `max_bytes`.
    """
    children = list(item)
    if len(children) != 1 or children[0].tag != ATTACHMENTS:
        raise errors.InvalidPayload(f"an attachments item carries exactly one <attachments xmlns='"
                                    f"{NS_PUBSUB_ATTACHMENTS}'/> (XEP-0470)")
    el = children[0]
    if not within_depth(el, MAX_DEPTH):
        raise errors.InvalidPayload(f"attachments are nested deeper than {MAX_DEPTH} levels")
    payload = serialise(el, NS_PUBSUB_ATTACHMENTS)
    if len(payload.encode("utf-8")) > max_bytes:
        raise errors.PayloadTooBig(f"items are limited to {max_bytes} bytes")
    return payload
