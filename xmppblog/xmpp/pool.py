# SPDX-License-Identifier: AGPL-3.0-or-later
"""Several XEP-0114 connections for one component domain, seen by the adapters as one
component (wire layer).

ejabberd routes one component domain over many connections when it is configured
with `domain_balancing` (`type: destination`, `component_number: K`): each
connection that holds one of the K slots receives the stanzas whose full `to`
hashes to that slot (so every stanza to one blog JID reaches one connection), and
a connection beyond the K receives nothing. `[component] connections = N` opens N
connections in this process; each finds its slot by probing for a return resource
(`BlogComponent._claim_slot`) and one that holds none keeps trying, so the K slots
move to whichever workers are alive.

The adapters register once here; every connection dispatches to the same handlers.
What a handler sends goes out on the connection its stanza came in on
(`RECEIVED_ON`), so a request's results and its answer keep their order; work that
no stanza started (the outbox) goes out on one connection at a time, and
`processed` pings on that same connection, which is what proves the host routed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
import xml.etree.ElementTree as ET

from .component import RECEIVED_ON, BlogComponent, IqHandler, StanzaHandler

log = logging.getLogger(__name__)


class ComponentPool:
    """N `BlogComponent` connections behind the interface the adapters use of one."""

    def __init__(self, members: list[BlogComponent]) -> None:
        if not members:
            raise ValueError("a pool needs at least one connection")
        self.members = members
        self.online = asyncio.Event()
        self.stopping = False
        self._on_online: list[Callable[[], None]] = []
        self._on_slot: list[Callable[[], None]] = []
        #: the connection our own stanzas (not replies) go out on while it is up
        self._writer: BlogComponent | None = None
        #: connections our own stanzas went out on since the last `processed`, with their stream
        self._unconfirmed: dict[BlogComponent, object] = {}
        for member in members:
            member.on_online(self._member_online)
            member.add_event_handler("disconnected", self._member_offline)
        self.boundjid = members[0].boundjid
        self.loop = members[0].loop

    # ------------------------------------------------------------ registration (on every connection)

    def on_iq(self, namespace: str, iq_type: str, handler: IqHandler) -> None:
        for member in self.members:
            member.on_iq(namespace, iq_type, handler)

    def on_message(self, kind: str, handler: StanzaHandler) -> None:
        for member in self.members:
            member.on_message(kind, handler)

    def on_message_error(self, handler: StanzaHandler) -> None:
        for member in self.members:
            member.on_message_error(handler)

    def on_presence(self, handler: StanzaHandler) -> None:
        for member in self.members:
            member.on_presence(handler)

    def on_online(self, callback: Callable[[], None]) -> None:
        """`callback` runs when the pool goes from no connection holding a slot to one."""
        self._on_online.append(callback)

    def on_slot(self, callback: Callable[[], None]) -> None:
        """`callback` runs when another connection takes a slot while the pool is online."""
        self._on_slot.append(callback)

    # ------------------------------------------------------------ state

    def live(self) -> list[BlogComponent]:
        """The connections that hold a slot and are up."""
        return [m for m in self.members if m.online.is_set()]

    @property
    def problem(self) -> str | None:
        if self.online.is_set():
            return None
        problems = [m.problem for m in self.members if m.problem]
        return problems[0] if problems else None

    @property
    def spare(self) -> bool:
        """No connection holds a slot because every slot is held (the host is fine)."""
        return not self.online.is_set() and all(m.spare for m in self.members)

    @property
    def oversize(self) -> int:
        return sum(m.oversize for m in self.members)

    def _member_online(self) -> None:
        if not self.online.is_set():
            self.online.set()
            for cb in self._on_online:
                cb()
        else:
            for cb in self._on_slot:
                cb()

    def _member_offline(self, _reason: Any) -> None:
        # the member's own handler ran first (registered in its constructor) and cleared its event
        if not self.live():
            self.online.clear()

    # ------------------------------------------------------------ the way out

    def _via(self) -> BlogComponent | None:
        """The connection a stanza goes out on: the one the request being handled came in on,
        else the one our own stanzas went out on last, else any that holds a slot."""
        received = RECEIVED_ON.get()
        if received is not None and received in self.members and received.online.is_set():
            return received
        if self._writer is not None and self._writer.online.is_set():
            return self._writer
        live = self.live()
        self._writer = live[0] if live else None
        return self._writer

    def send_raw_stanza(self, data: str, largest: int | None = None) -> bool:
        """Write pre-serialised stanzas on one connection (`BlogComponent.send_raw_stanza`)."""
        member = self._via()
        if member is None or not member.send_raw_stanza(data, largest):
            return False
        if RECEIVED_ON.get() is None:  # our own stanza: `processed` must prove this stream routed it
            self._unconfirmed.setdefault(member, member.transport)
        return True

    async def writable(self, high_water: int = 4 * 1024 * 1024) -> None:
        member = self._via()
        if member is not None:
            await member.writable(high_water)

    async def processed(self, host_domain: str, timeout: float = 15.0) -> bool:
        """True once the host processed every stanza of our own written since the last call: a
        ping on each connection they went out on. If one of those streams closed meanwhile
        (what it had not sent is lost) the answer is False, and the batch is sent again."""
        written, self._unconfirmed = self._unconfirmed, {}
        if not written:
            return True
        if any(m.transport is not t or not m.online.is_set() for m, t in written.items()):
            return False
        answers = await asyncio.gather(*(m.processed(host_domain, timeout) for m in written))
        return all(answers) and all(m.transport is t for m, t in written.items())

    async def disco(self, to: str, namespace: str, timeout: float = 10.0) -> ET.Element | None:
        member = self._via()
        return None if member is None else await member.disco(to, namespace, timeout)

    def request_iq(self, to: str, itype: str, frm: str | None = None) -> Any:
        member = self._via() or self.members[0]
        return member.request_iq(to, itype, frm)

    # ------------------------------------------------------------ life cycle

    def background(self, coro: Awaitable[None]) -> None:
        """Work that is not a reply, as a task `drain` waits for (the first connection's)."""
        self.members[0].background(coro)

    def connect(self) -> None:
        for member in self.members:
            member.connect()

    async def drain(self, timeout: float = 10.0) -> None:
        self.stopping = True
        await asyncio.gather(*(m.drain(timeout) for m in self.members))

    async def close(self) -> None:
        self.stopping = True
        await asyncio.gather(*(m.close() for m in self.members))


def connections(factory: Callable[..., BlogComponent], n: int, find_slot: bool, *args: Any,
                **kwargs: Any) -> BlogComponent | ComponentPool:
    """The component the adapters use: one connection as is (Prosody, or ejabberd without
    balancing), or a pool of `n` that each find their slot."""
    if n == 1:
        return factory(*args, find_slot=find_slot, **kwargs)
    return ComponentPool([factory(*args, find_slot=find_slot, name=f"{i + 1}/{n}", **kwargs) for i in range(n)])
