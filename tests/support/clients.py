# SPDX-License-Identifier: AGPL-3.0-or-later
"""slixmpp test clients: real XEP-0060 clients with an inbox of received messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError

TIMEOUT = 10.0


class Inbox:
    def __init__(self, xmpp: slixmpp.BaseXMPP) -> None:
        self.items: list[Any] = []
        self._cond = asyncio.Condition()
        xmpp.add_event_handler("message", self._on)
        # message with no body (pubsub events) are not 'message' events in slixmpp
        xmpp.add_event_handler("pubsub_publish", self._on)
        xmpp.add_event_handler("pubsub_retract", self._on)
        xmpp.add_event_handler("pubsub_purge", self._on)
        xmpp.add_event_handler("pubsub_delete", self._on)
        xmpp.add_event_handler("pubsub_subscription", self._on)

    async def _on(self, stanza: Any) -> None:
        async with self._cond:
            self.items.append(stanza)
            self._cond.notify_all()

    async def wait(self, match: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any | None:
        end = time.monotonic() + timeout
        seen = 0
        async with self._cond:
            while True:
                for st in self.items[seen:]:
                    if match(st):
                        self.items.remove(st)
                        return st
                seen = len(self.items)
                left = end - time.monotonic()
                if left <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._cond.wait(), left)
                except TimeoutError:
                    return None

    def count(self, match: Callable[[Any], bool]) -> int:
        return sum(1 for st in self.items if match(st))


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password,
                         plugin_config={"feature_mechanisms": {"unencrypted_scram": True}})
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        for p in ("xep_0030", "xep_0004", "xep_0059", "xep_0060", "xep_0050", "xep_0199"):
            self.register_plugin(p)
        self.inbox = Inbox(self)
        self.auto_authorize = None
        self.auto_subscribe = False

    @property
    def pubsub(self) -> Any:
        return self.plugin["xep_0060"]

    async def error_of(self, coro: Any) -> tuple[str, str, str | None]:
        """(type, condition, pubsub#errors child) of a request expected to fail."""
        try:
            await coro
        except IqError as exc:
            err = exc.iq["error"]
            app = None
            for child in err.xml:
                if child.tag.startswith("{http://jabber.org/protocol/pubsub#errors}"):
                    app = child.tag.split("}")[1]
            return err["type"], err["condition"], app
        raise AssertionError("request unexpectedly succeeded")


async def connect(jid: str, ip: str, port: int = 5222, password: str = "password",
                  presence: bool = True) -> Client:
    c = Client(jid, password)
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def on_start(_: Any) -> None:
        if presence:
            c.send_presence()
        await c.get_roster()
        if not started.done():
            started.set_result(True)

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(
        RuntimeError(f"auth failed for {jid}")))
    c.connect(ip, port)
    await asyncio.wait_for(started, TIMEOUT)
    return c


async def raw_iq(client: Client, to: str, itype: str, xml: str, timeout: float = TIMEOUT) -> Any:
    """Send an <iq/> with a literal payload; return the reply (raises IqError)."""
    from slixmpp.xmlstream import ET
    iq = client.make_iq(ito=to, itype=itype)
    iq.append(ET.fromstring(xml))
    return await iq.send(timeout=timeout)
