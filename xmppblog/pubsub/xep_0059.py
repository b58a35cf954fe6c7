# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0059 Result Set Management: parse a <set/>, render one (adapter layer)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..core import errors
from ..core.model import Page, PageRequest
from ..protocol import NS_RSM
from . import forms

R = f"{{{NS_RSM}}}"


def _int(el: ET.Element | None, what: str) -> int | None:
    return None if el is None else forms.integer(el.text or "", f"RSM <{what}/>")


def parse(parent: ET.Element) -> PageRequest | None:
    """The RSM request inside `parent`, or None if it carries no <set/>.

    Raises:
        BadRequest: on a malformed <set/>.
    """
    s = parent.find(R + "set")
    if s is None:
        return None
    after, before = s.find(R + "after"), s.find(R + "before")
    if after is not None and before is not None:
        raise errors.BadRequest("RSM: <after/> and <before/> exclude each other")
    if after is not None and not (after.text or "").strip():
        raise errors.BadRequest("RSM: <after/> needs an item id")
    return PageRequest(
        max=_int(s.find(R + "max"), "max"),
        after=(after.text or "").strip() if after is not None else None,
        before=(before.text or "").strip() if before is not None else None,
        index=_int(s.find(R + "index"), "index"),
    )


def render(page: Page) -> ET.Element:
    s = ET.Element(R + "set")
    if page.items:
        first = ET.SubElement(s, R + "first")
        if page.first_index is not None:
            first.set("index", str(page.first_index))
        first.text = page.items[0].item_id
        ET.SubElement(s, R + "last").text = page.items[-1].item_id
    if page.count is not None:
        ET.SubElement(s, R + "count").text = str(page.count)
    return s
