# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0313 Message Archive Management on pubsub nodes: <query xmlns='urn:xmpp:mam:2'/>
-> Archive calls (adapter layer).

Parses the query (its form, RSM set and node) and serialises the answer, nothing
more: which items, in which order, and who may read them is core/archive.py's.
As XEP-0313 §5 describes for pubsub, each result is a <message/> carrying the
item as a pubsub event, forwarded (XEP-0297) with its delay stamp, sent before
the iq result that carries <fin/> and the RSM bounds. The full-text field is
accepted under both names clients send: Libervia's `fulltext` and XEP-0431's
`{urn:xmpp:fulltext:0}fulltext`.
"""

from __future__ import annotations

import logging
import secrets
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from ..core import errors
from ..core.archive import Archive, ArchivePage, ArchiveQuery
from ..core.model import NodeRef
from ..protocol import NS_CLIENT, NS_DELAY, NS_FORWARD, NS_FULLTEXT, NS_MAM, NS_PUBSUB_EVENT, NS_RSM
from ..xmpp.component import BlogComponent, RawXml, Request
from . import forms, xep_0059

log = logging.getLogger(__name__)

M = f"{{{NS_MAM}}}"
#: the full-text fields: Libervia's (plugin_xep_0313 sends any filter under its bare name) and XEP-0431's
FULLTEXT_FIELDS = ("fulltext", f"{{{NS_FULLTEXT}}}fulltext")
#: query ids are echoed in every result; longer ones are not an id
MAX_QUERY_ID = 256


def _when(value: str, var: str) -> datetime:
    """An XEP-0082 date-time with its time zone. Raises BadRequest otherwise."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise errors.BadRequest(f"{var} must be an XEP-0082 date and time, e.g. 2026-01-31T12:00:00Z") from None
    if at.tzinfo is None:
        raise errors.BadRequest(f"{var} needs a time zone (Z or an offset)")
    return at


def query_form() -> ET.Element:
    """The fields a query may use (XEP-0313 §4.1.5), each with its type."""
    return (forms.Form("form")
            .field("FORM_TYPE", NS_MAM, "hidden")
            .field("start", None, "text-single", "Items published or edited at or after (date and time)")
            .field("end", None, "text-single", "Items published or edited at or before (date and time)")
            .field(FULLTEXT_FIELDS[0], None, "text-single", "Full text (words, \"a phrase\", #tag, from:jid)")
            .field(FULLTEXT_FIELDS[1], None, "text-single", "Full text (XEP-0431)")
            .el)


def parse_query(query: ET.Element) -> ArchiveQuery:
    """The archive query a <query/> asks.

    Raises:
        BadRequest: a malformed form or RSM set, or a field this service does not know.
        Unsupported: a known filter it does not implement (`with`, RSM index, flip-page).
    """
    start = end = None
    text: list[str] = []
    x = query.find(forms.X)
    if x is not None:
        ftype, values = forms.parse(x)
        if ftype not in ("submit", ""):
            raise errors.BadRequest("submit the query form with type='submit'")
        for var, vals in values.items():
            value = " ".join(v.strip() for v in vals if v.strip())
            if var == "FORM_TYPE":
                if value != NS_MAM:
                    raise errors.BadRequest(f"FORM_TYPE must be {NS_MAM}")
            elif var in ("start", "end"):
                if len(vals) > 1:
                    raise errors.BadRequest(f"{var} takes one value")
                at = _when(value, var) if value else None
                start, end = (at, end) if var == "start" else (start, at)
            elif var in FULLTEXT_FIELDS:
                if value:
                    text.append(value)
            elif var == "with":
                # XEP-0313 §5: a pubsub archive has no correspondents to filter by
                raise errors.Unsupported("with", "a node's archive cannot be filtered by JID")
            else:
                raise errors.BadRequest(f"unknown field {var[:64]!r} (ask for the form to see the fields)")
    for child in query:
        if child.tag.startswith(M):  # flip-page and other extensions we do not implement
            raise errors.Unsupported(child.tag[len(M):], f"<{child.tag[len(M):]}/> is not supported")
    rsm = xep_0059.parse(query)
    if rsm is not None and rsm.index is not None:
        raise errors.Unsupported("rsm-index", "page with <after/> and <before/>")
    return ArchiveQuery(start, end, " ".join(text), rsm.after if rsm else None, rsm.before if rsm else None,
                        rsm.max if rsm else None)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds" if at.microsecond else "seconds").replace(
        "+00:00", "Z")


def result_messages(page: ArchivePage, service: str, to: str, node: str, query_id: str) -> list[str]:
    """One <message/> per archived item (XEP-0313 §5), oldest first, serialised from the
    stored payload strings as items pages are (xep_0060.page_xml)."""
    out = []
    frm, qid, n = quoteattr(service), quoteattr(query_id), quoteattr(node)
    head = f"<message from={frm} to={quoteattr(to)} id="
    for entry in page.entries:
        item = entry.item
        pub = f" publisher={quoteattr(item.publisher)}" if item.publisher else ""
        out.append(
            f"{head}{quoteattr('mam' + secrets.token_hex(8))}>"
            f"<result xmlns='{NS_MAM}' queryid={qid} id={quoteattr(entry.archive_id)}>"
            f"<forwarded xmlns='{NS_FORWARD}'><delay xmlns='{NS_DELAY}' stamp={quoteattr(_stamp(item.updated))}/>"
            f"<message xmlns='{NS_CLIENT}' from={frm}><event xmlns='{NS_PUBSUB_EVENT}'><items node={n}>"
            f"<item id={quoteattr(item.item_id)}{pub}>{item.payload}</item></items></event></message>"
            "</forwarded></result></message>")
    return out


def fin(page: ArchivePage) -> RawXml:
    """The iq result's <fin/>: complete or not, and the RSM bounds and count."""
    s = ET.Element(f"{{{NS_RSM}}}set")
    if page.first is not None and page.last is not None:
        first = ET.SubElement(s, f"{{{NS_RSM}}}first")
        if page.first_index is not None:
            first.set("index", str(page.first_index))
        first.text = page.first
        ET.SubElement(s, f"{{{NS_RSM}}}last").text = page.last
    if page.count is not None:
        ET.SubElement(s, f"{{{NS_RSM}}}count").text = str(page.count)
    return RawXml(f"<fin xmlns='{NS_MAM}' complete='{'true' if page.complete else 'false'}'>"
                  f"{ET.tostring(s, encoding='unicode')}</fin>")


class ArchiveAdapter:
    """Routes MAM queries addressed to a blog JID or the service JID to the archive."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._component: BlogComponent | None = None

    def register(self, component: BlogComponent) -> None:
        self._component = component
        component.on_iq(NS_MAM, "get", self.get_form)
        component.on_iq(NS_MAM, "set", self.set_query)

    def _hosted(self, req: Request) -> None:
        if req.to != self.archive.nodes.addr.service_jid:
            self.archive.nodes.owner_of(req.to)  # NodeNotFound: nobody's blog

    async def get_form(self, req: Request, query: ET.Element) -> ET.Element:
        """XEP-0313 §4.1.5: the fields a query may use."""
        self._hosted(req)
        q = ET.Element(M + "query")
        q.append(query_form())
        return q

    async def set_query(self, req: Request, query: ET.Element) -> RawXml:
        """XEP-0313 §5: a node's archive; the results go out as messages before the iq result."""
        node = query.get("node", "")
        if not node:
            raise errors.NodeIdRequired("a pubsub archive query names its node")
        if len(node) > 1024:
            raise errors.BadRequest("node names are limited to 1024 characters")
        query_id = query.get("queryid", "")
        if len(query_id) > MAX_QUERY_ID:
            raise errors.BadRequest(f"query ids are limited to {MAX_QUERY_ID} characters")
        self._hosted(req)
        page = await self.archive.query(req.actor, NodeRef(req.to, node), parse_query(query))
        messages = result_messages(page, req.to, req.sender, node, query_id)
        component = self._component
        assert component is not None, "registered before use"
        for message in messages:  # each measured against the stanza limit on its way out
            if not component.send_raw_stanza(message):
                # no stream, or (never with the configured limits) an entry too large to send
                raise errors.ResourceConstraint("the results could not be sent")
        log.debug("archive query: from=%s node=%s results=%d complete=%s", req.sender, node,
                  len(messages), page.complete)
        return fin(page)
