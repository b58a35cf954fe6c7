# SPDX-License-Identifier: AGPL-3.0-or-later
"""slixmpp test clients: real XEP-0060 clients with an inbox of received messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError

from . import ports

TIMEOUT = 10.0


MESSAGE_EVENTS = ("message", "pubsub_publish", "pubsub_retract", "pubsub_purge", "pubsub_delete",
                  "pubsub_subscription")


class Inbox:
    def __init__(self, xmpp: slixmpp.BaseXMPP, events: tuple[str, ...] = MESSAGE_EVENTS) -> None:
        self.items: list[Any] = []
        self._cond = asyncio.Condition()
        # messages without a body (pubsub events) are not 'message' events in slixmpp
        for name in events:
            xmpp.add_event_handler(name, self._on)

    async def _on(self, stanza: Any) -> None:
        async with self._cond:
            self.items.append(stanza)
            self._cond.notify_all()

    async def wait(self, match: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any | None:
        end = time.monotonic() + timeout
        seen = 0
        async with self._cond:
            while True:
                for i in range(seen, len(self.items)):
                    st = self.items[i]
                    if match(st):
                        del self.items[i]  # by position: slixmpp's stanza __eq__ parses every field
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

    def clear(self) -> None:
        self.items.clear()


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
        # Like a person clicking "accept" when a blog JID asks for their presence.
        self.auto_authorize = True
        self.auto_subscribe = False
        self.presences = Inbox(self, events=("presence_subscribe", "presence_subscribed",
                                             "presence_unsubscribed", "presence_available"))

    @property
    def pubsub(self) -> Any:
        return self.plugin["xep_0060"]

    async def say(self, text: str, to: str | None = None, timeout: float = TIMEOUT) -> str:
        """Chat `text` to the service (or `to`); return the body of its answer."""
        to = to or "blog." + self.boundjid.domain
        self.send_message(mto=to, mbody=text, mtype="chat")
        answer = await self.inbox.wait(
            lambda m: m["from"].bare == to and m["type"] == "chat" and bool(m["body"]), timeout)
        if answer is None:
            raise AssertionError(f"no answer from {to} to {text!r}")
        return answer["body"]

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


async def connect(jid: str, ip: str, port: int = ports.C2S, password: str = "password",
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
