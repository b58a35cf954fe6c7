# SPDX-License-Identifier: AGPL-3.0-or-later
"""The outbox sender: drains planned notifications onto the stream (adapter layer).

Each event is serialised once; each recipient only gets its own envelope
(`<message to=…>`) around the shared bytes. Local recipients of an event are
addressed with one `str.join` and handed over in one write per chunk (the fast
path, `Template.bulk`), or, when the host offers XEP-0033 multicast, in one
stanza per chunk of the service's address limit (`Template.multicast`);
recipients on other servers are sent one tracked row at a time so bounces can
name them. Rows are deleted only after the host server
confirmed it processed the batch (a ping answered after it on the same stream,
THREATS.md fact 7); a crash in between re-sends that batch, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ..core import errors
from ..core.model import EventKind, OutboxEvent
from ..core.ports import Clock, UnitOfWorkFactory
from ..xmpp.component import stanza_bytes
from ..xmpp.multicast import Multicast
from ..protocol import NS_ADDRESS, NS_DATA, NS_NICK, NS_PUBSUB_EVENT, NS_PUBSUB_SUB_AUTH

log = logging.getLogger(__name__)


def _event(inner: str) -> str:
    return f"<event xmlns='{NS_PUBSUB_EVENT}'>{inner}</event>"


def _field(var: str, value: str, ftype: str, label: str | None = None) -> str:
    attrs = f" var={quoteattr(var)} type={quoteattr(ftype)}"  # always typed: wokkel fails without
    if label:
        attrs += f" label={quoteattr(label)}"
    return f"<field{attrs}><value>{escape(value)}</value></field>"


@dataclass(frozen=True, slots=True)
class Template:
    """A notification serialised once: only `to` and `id` differ per recipient."""

    element: str      # message | presence
    attrs: str        # from=… type=… (escaped)
    inner: str

    def address(self, to: str, stanza_id: str) -> str:
        return (f"<{self.element} {self.attrs} to={quoteattr(to)} id={quoteattr(stanza_id)}>"
                f"{self.inner}</{self.element}>")

    def bulk(self, recipients: Sequence[str], stanza_id: str) -> str:
        """`address()` for each recipient, concatenated: the same bytes, built with one join.

        JIDs that need no attribute escaping (nearly all) are spliced between a
        shared head and tail; any other falls back to `address()` for the lot.
        """
        if _NEEDS_ESCAPE.search("".join(recipients)):
            return "".join([self.address(r, stanza_id) for r in recipients])
        head = f'<{self.element} {self.attrs} to="'
        tail = f'" id={quoteattr(stanza_id)}>{self.inner}</{self.element}>'
        return head + (tail + head).join(recipients) + tail

    def multicast(self, recipients: Sequence[str], stanza_id: str, service: str) -> str:
        """One stanza for the host's XEP-0033 service: it delivers `inner` to every recipient
        (bcc: nobody sees the others), as `address()` would have, one by one."""
        if _NEEDS_ESCAPE.search("".join(recipients)):
            addresses = "".join(f"<address type='bcc' jid={quoteattr(r)}/>" for r in recipients)
        else:
            addresses = "<address type='bcc' jid='" + "'/><address type='bcc' jid='".join(recipients) + "'/>"
        return (f"<{self.element} {self.attrs} to={quoteattr(service)} id={quoteattr(stanza_id)}>"
                f"<addresses xmlns='{NS_ADDRESS}'>{addresses}</addresses>{self.inner}</{self.element}>")


#: characters `quoteattr` would escape, or that make it choose single quotes
_NEEDS_ESCAPE = re.compile(r"[&<>\"'\t\r\n]")


def render(ev: OutboxEvent, im_body: Callable[[OutboxEvent], str] | None = None) -> Template:
    """The template of a planned notification; serialised once per event.

    Args:
        im_body: renders the chat body of an IM_POST (im/text.py).
    """
    frm = f"from={quoteattr(ev.sender)}"
    node = quoteattr(ev.node)
    if ev.kind is EventKind.ITEM_PUBLISHED:
        pub = f" publisher={quoteattr(ev.publisher)}" if ev.publisher else ""
        return Template("message", f"{frm} type='headline'", _event(
            f"<items node={node}><item id={quoteattr(ev.item_id or '')}{pub}>{ev.payload or ''}</item></items>"))
    if ev.kind is EventKind.ITEM_RETRACTED:
        return Template("message", f"{frm} type='headline'",
                        _event(f"<items node={node}><retract id={quoteattr(ev.item_id or '')}/></items>"))
    if ev.kind is EventKind.NODE_PURGED:
        return Template("message", f"{frm} type='headline'", _event(f"<purge node={node}/>"))
    if ev.kind is EventKind.NODE_DELETED:
        return Template("message", f"{frm} type='headline'", _event(f"<delete node={node}/>"))
    if ev.kind is EventKind.SUBSCRIPTION_CHANGED:
        return Template("message", f"{frm} type='headline'", _event(
            f"<subscription node={node} jid={quoteattr(ev.subject or '')} "
            f"subscription={quoteattr(ev.state or 'none')}/>"))
    if ev.kind is EventKind.SUBSCRIPTION_PENDING:
        # XEP-0060 §8.6: the approval form, plus a body for IM clients that show no forms.
        who = ev.subject or ""
        body = (f"{who.split('/')[0]} asks to follow your blog ({ev.node} on {ev.sender}). "
                f"Reply 'approve {who.split('/')[0]}' or 'deny {who.split('/')[0]}', or answer the form.")
        form = (f"<x xmlns='{NS_DATA}' type='form'><title>PubSub subscriber request</title>"
                "<instructions>To approve this entity's subscription request, set "
                "pubsub#allow to true.</instructions>"
                + _field("FORM_TYPE", NS_PUBSUB_SUB_AUTH, "hidden")
                + _field("pubsub#node", ev.node, "text-single", "Node ID")
                + _field("pubsub#subscriber_jid", who, "jid-single", "Subscriber Address")
                + _field("pubsub#allow", "false", "boolean", "Allow this JID to subscribe to this pubsub node?")
                + "</x>")
        return Template("message", f"{frm} type='normal'", f"<body>{escape(body)}</body>{form}")
    if ev.kind is EventKind.IM_POST:
        # Chat clients drop messages that carry a pubsub <event/>: a body and the bare entry only.
        body = im_body(ev) if im_body else (ev.payload or "")
        return Template("message", f"{frm} type='chat'", f"<body>{escape(body)}</body>{ev.payload or ''}")
    if ev.kind is EventKind.PRESENCE:
        ptype = ev.state or "available"
        attrs = frm if ptype == "available" else f"{frm} type={quoteattr(ptype)}"
        inner = f"<status>{escape(ev.payload)}</status>" if ev.payload else ""
        if ptype == "subscribe":
            # XEP-0172: a nickname in subscription requests.
            inner += f"<nick xmlns='{NS_NICK}'>{escape(ev.sender.split('@')[0])}</nick>"
        return Template("presence", attrs, inner)
    raise ValueError(f"unknown event kind {ev.kind}")


class OutboxSender:
    """Drains the outbox whenever woken, and once a second for retries."""

    def __init__(self, uow: UnitOfWorkFactory, send: Callable[[str, int | None], bool], online: asyncio.Event,
                 clock: Clock, batch: int = 500, max_stanza_bytes: int = 400 * 1024,
                 im_body: Callable[[OutboxEvent], str] | None = None,
                 is_remote: Callable[[str], bool] = lambda jid: False,
                 expire: Callable[[], Awaitable[int]] | None = None,
                 writable: Callable[[int], Awaitable[None]] | None = None,
                 processed: Callable[[], Awaitable[bool]] | None = None,
                 bulk_events: int = 64, bulk_chunk: int = 1000,
                 delivered: Callable[[str, int, datetime | None, datetime], None] | None = None,
                 shards: Callable[[], frozenset[int]] | None = None, batch_lock: asyncio.Lock | None = None,
                 idle_poll: float = 1.0) -> None:
        """`delivered(kind, count, planned_at, now)`: told of what the host confirmed (metrics).

        In a cluster, `shards()` names the outbox shards this worker sends from, `batch_lock` is
        held while a batch is sent (shards are given back only between batches), and the
        outbox is looked at every `idle_poll` seconds when idle: other workers plan
        notifications for this one's shards without waking it."""
        self._shards = shards
        self._batch_lock = batch_lock
        self.idle_poll = idle_poll
        self._im_body = im_body
        self._delivered = delivered
        self._writable = writable
        self._processed = processed
        self.bulk_events = bulk_events
        self.bulk_chunk = bulk_chunk
        self._is_remote = is_remote
        self._expire = expire
        self._last_expiry = 0.0
        self._uow = uow
        self._send = send
        self._online = online
        self._clock = clock
        self.batch = batch
        self.max_stanza_bytes = max_stanza_bytes
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0
        self.dropped = 0
        self.more = False
        #: the host's XEP-0033 service (xmpp/multicast.py), set once discovered; None: one stanza each
        self.multicast: Multicast | None = None
        self.multicast_stanzas = 0
        # multicast stanza id -> (sent at, service, template, recipients): what to send again if refused
        self._in_multicast: dict[str, tuple[float, str, Template, Sequence[str]]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Drain until `stop()`; then hand over what is due, once, and return."""
        delay = 1.0
        while not self._stopping:
            if not self._online.is_set():
                self._wake.clear()  # rows planned while offline are sent once connected
                await self._until(self._online.wait(), timeout=None)
                continue
            self._wake.clear()  # before draining: a wake during the drain is not lost
            try:
                await self.drain_once()
                delay = 1.0
            except Exception as exc:
                if isinstance(exc, errors.StorageUnavailable):
                    log.warning("outbox: database unavailable; retrying in %.0fs", delay)
                else:
                    log.exception("outbox: drain failed; retrying in %.0fs", delay)
                await self._until(asyncio.sleep(delay), timeout=None)
                delay = min(delay * 2, 30.0)
                continue
            if self._expire is not None and asyncio.get_running_loop().time() - self._last_expiry > 60:
                self._last_expiry = asyncio.get_running_loop().time()
                with contextlib.suppress(errors.BlogError):  # retried a minute later
                    await self._expire()
            if not self.more:
                await self._until(None, timeout=self.idle_poll)  # a tick for retries that came due
        if self._online.is_set():
            try:
                await self.drain_once()
                # full batches: there may be more (a cluster's worker leaves them to the workers
                # that take its shards over, rather than be cut off in the middle of a batch)
                while self.more and self._batch_lock is None:
                    await self.drain_once()
            except errors.BlogError:
                log.warning("outbox: could not flush on shutdown; it resumes at next start")

    async def _until(self, aw: Any, timeout: float | None) -> None:
        """Wait for `aw` (or the timeout), but return at once when woken."""
        waits = [asyncio.ensure_future(self._wake.wait())]
        if aw is not None:
            waits.append(asyncio.ensure_future(aw))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def stop(self) -> None:
        """Ask `run()` to hand over what is due and return (await the run task after this)."""
        self._stopping = True
        self._wake.set()

    async def drain_once(self) -> int:
        """Hand over what is due: local recipients in bulk, then tracked rows. Returns the count.

        Sets `more` when a batch was full (more may be due at once).
        """
        self.more = False
        if self._batch_lock is None:
            return await self._drain_bulk(None) + await self._drain_tracked(None)
        async with self._batch_lock:
            shards = self._shards() if self._shards is not None else None
            if shards is not None and not shards:
                return 0  # this worker holds no shard (yet)
            if shards is not None:
                async with self._uow() as uow:  # the idle poll: one statement when nothing is due
                    if not await uow.outbox.any_due(self._clock.now(), shards):
                        return 0
            return await self._drain_bulk(shards) + await self._drain_tracked(shards)

    async def _drain_bulk(self, shards: frozenset[int] | None) -> int:
        async with self._uow() as uow:
            due = await uow.outbox.due_bulk(self._clock.now(), self.bulk_events, shards)
        if not due:
            return 0
        self.more |= len(due) >= self.bulk_events
        handed: list[int] = []
        left: tuple[int, Sequence[str]] | None = None
        count = 0
        confirmed: list[tuple[str, int, datetime | None]] = []
        multicast_before = self.multicast_stanzas
        for d in due:
            recipients = d.event.recipients
            template = render(d.event, self._im_body)
            # Outbox ids are never reused (migration 0012_outbox_ids.py): clients de-duplicate on (sender, id).
            sid = f"n{d.event_id}"
            largest = self._size(template.address(max(recipients, key=len), sid)) if recipients else 0
            if largest > self.max_stanza_bytes:
                log.error("outbox: notification too large, dropped for %d local recipient(s): event=%s",
                          len(recipients), d.event_id)
                self.dropped += len(recipients)
                handed.append(d.event_id)
                continue
            done = 0
            while done < len(recipients):
                chunk = recipients[done:done + self.bulk_chunk]
                if not self._send(*self._addressed(template, chunk, sid, done, largest)):
                    break
                done += len(chunk)
                if self._writable is not None:
                    await self._writable(4 * 1024 * 1024)  # let the host drain our writes before the next chunk
            count += done
            confirmed.append((d.event.kind.value, done, d.created_at))
            if done < len(recipients):
                left = (d.event_id, recipients[done:])  # the stream went away: resume here
                break
            handed.append(d.event_id)
        if not await self._confirmed():
            return 0  # unconfirmed: all of it is sent again
        async with self._uow() as uow:
            await uow.outbox.bulk_handed(handed)
            if left is not None:
                await uow.outbox.bulk_left(*left)
            await uow.commit()
        self._tell_delivered(confirmed)
        self.sent += count
        log.debug("outbox: handed %d local notification(s) of %d event(s) to the stream%s", count, len(handed),
                  f" in {n} multicast stanza(s)" if (n := self.multicast_stanzas - multicast_before) else "")
        return count

    def _addressed(self, template: Template, chunk: Sequence[str], sid: str, offset: int,
                   largest: int) -> tuple[str, int]:
        """The bytes handing `template` to `chunk`, and the size of their largest stanza: multicast
        stanzas of the service's size when the host offers multicast (messages only), else one
        stanza per recipient (the largest is `largest`)."""
        mc = self.multicast
        if mc is None or template.element != "message" or len(template.inner) > self.max_stanza_bytes // 2:
            return template.bulk(chunk, sid), largest
        now = asyncio.get_running_loop().time()
        if self._in_multicast and next(iter(self._in_multicast.values()))[0] < now - 120:
            self._in_multicast = {k: v for k, v in self._in_multicast.items() if v[0] >= now - 120}
        out = []
        for at in range(0, len(chunk), mc.limit):
            part = chunk[at:at + mc.limit]
            stanza_id = f"{sid}.{offset + at}"
            self._in_multicast[stanza_id] = (now, mc.service, template, part)
            out.append(template.multicast(part, stanza_id, mc.service))
        self.multicast_stanzas += len(out)
        return "".join(out), max(self._size(m) for m in out)

    def multicast_refused(self, stanza_id: str, sender: str, condition: str) -> bool:
        """The multicast service bounced one of our stanzas: send its recipients one stanza
        each, and stop using multicast until the next discovery. False if not ours."""
        entry = self._in_multicast.get(stanza_id)
        if entry is None or sender != entry[1]:
            return False
        del self._in_multicast[stanza_id]
        _, _, template, recipients = entry
        log.warning("outbox: %s refused a multicast stanza (%s); sending its %d notification(s) one by one "
                    "and multicast off until reconnect", sender, condition, len(recipients))
        self.multicast = None
        self._send(template.bulk(recipients, stanza_id),
                   self._size(template.address(max(recipients, key=len), stanza_id)))
        return True

    async def _confirmed(self) -> bool:
        """The host server processed everything written (component.processed): only then
        are rows handed. Otherwise they are sent again: duplicates at worst, never a loss."""
        if self._processed is None or await self._processed():
            return True
        log.warning("outbox: the host did not confirm the last batch; it is sent again")
        return False

    def _tell_delivered(self, confirmed: list[tuple[str, int, datetime | None]]) -> None:
        if self._delivered is None:
            return
        now = self._clock.now()
        for kind, count, planned_at in confirmed:
            self._delivered(kind, count, planned_at, now)

    def _size(self, stanza: str) -> int:
        return stanza_bytes(stanza, self.max_stanza_bytes)

    async def _drain_tracked(self, shards: frozenset[int] | None) -> int:
        async with self._uow() as uow:
            due = await uow.outbox.due(self._clock.now(), self.batch, shards)
        if not due:
            return 0
        self.more |= len(due) >= self.batch
        handed: list[int] = []
        remote: list[int] = []
        too_big: list[int] = []
        confirmed: list[tuple[str, int, datetime | None]] = []
        cache: dict[int, Template] = {}
        for d in due:
            template = cache.get(d.event_id)
            if template is None:
                template = cache[d.event_id] = render(d.event, self._im_body)
            stanza = template.address(d.recipient, f"ob{d.row_id}")
            size = self._size(stanza)
            if size > self.max_stanza_bytes:
                # Never send what would make the host server drop us (T16).
                log.error("outbox: notification too large, dropped: event=%s to=%s bytes=%d",
                          d.event_id, d.recipient, size)
                self.dropped += 1
                too_big.append(d.row_id)
                continue
            if not self._send(stanza, size):
                break
            # Remote servers may bounce it later (federation/bounces.py): keep the row a while.
            (remote if self._is_remote(d.recipient) else handed).append(d.row_id)
            if d.attempts == 0:  # a retry is the same notification: counted once, timed from its planning
                confirmed.append((d.event.kind.value, 1, d.created_at))
        if not await self._confirmed():
            return 0
        async with self._uow() as uow:
            await uow.outbox.done(handed)
            if too_big:
                await uow.outbox.done(too_big, failed=True)  # counted as failed (`status ID`)
            await uow.outbox.mark_sent(remote, self._clock.now())
            await uow.commit()
        self._tell_delivered(confirmed)
        self.sent += len(handed) + len(remote)
        handed += remote + too_big
        log.debug("outbox: handed %d notification(s) to the stream", len(handed))
        return len(handed)
