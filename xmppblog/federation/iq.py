# SPDX-License-Identifier: AGPL-3.0-or-later
"""IQ requests to other servers, from one of our JIDs (adapter layer).

Remote errors are never passed on verbatim: an error answer or silence
becomes `RemoteUnavailable` with the condition named, for our logs only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.xmlstream import NotConnectedError

from ..core import errors
from ..protocol import NS_STANZAS
from ..xmpp.component import BlogComponent


def condition(stanza: ET.Element) -> str:
    """The defined condition of an error stanza, whatever namespace its <error/> is in.

    (slixmpp's Error plugin only looks in jabber:client; a component stream says
    jabber:component:accept.)
    """
    for err in stanza:
        if err.tag.endswith("}error") or err.tag == "error":
            for child in err:
                if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
                    return child.tag.split("}", 1)[1]
    return "undefined-condition"


class Requests:
    def __init__(self, component: BlogComponent, timeout: float = 10.0) -> None:
        self.component = component
        self.timeout = timeout

    async def send(self, to: str, itype: str, payload: ET.Element, frm: str | None = None) -> ET.Element:
        """Send an iq and return the result stanza.

        Raises:
            RemoteUnavailable: an error answer (its condition in `.condition`), no answer, no stream.
        """
        # from our return JID unless told: with several connections, that is how the answer finds this one
        iq = self.component.request_iq(to, itype, frm)
        iq.append(payload)
        try:
            reply = await iq.send(timeout=self.timeout)  # type: ignore[no-untyped-call]
        except IqError as exc:
            cond = condition(exc.iq.xml)
            raise errors.RemoteUnavailable(f"{to} refused ({cond})", condition=cond) from None
        except IqTimeout:
            raise errors.RemoteUnavailable(f"{to} did not answer") from None
        except NotConnectedError:
            raise errors.RemoteUnavailable("not connected to the host server") from None
        result: ET.Element = reply.xml
        return result

    async def get(self, to: str, payload: ET.Element) -> ET.Element:
        return await self.send(to, "get", payload)

    async def set(self, to: str, payload: ET.Element, frm: str | None = None) -> ET.Element:
        return await self.send(to, "set", payload, frm)
