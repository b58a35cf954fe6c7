# SPDX-License-Identifier: AGPL-3.0-or-later
"""The XEP-0114 connection and stanza routing (wire layer).

`BlogComponent` is a slixmpp ComponentXMPP with slixmpp's own roster and
presence automation switched off (DESIGN.md "Pitfalls": presence state is
ours, in the database), a reconnect loop with capped backoff, and one router
that classifies each stanza by its payload (an iq's namespace; a message's
<event/>, form or body; a presence's type), asks the gate (spamguard) and
hands it to the adapter registered for that kind. Every handler runs as a
tracked task so that shutdown can wait for in-flight work. Any error escaping
an adapter becomes a stanza error here, once.

One way out: every byte written to the host passes `_out`, which refuses any
stanza larger than `max_stanza_bytes` (the host would close our stream over
512 KiB, THREATS.md fact 6); a reply that would not fit is answered with
`resource-constraint` instead, so no request can take the service down.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.xmlstream import NotConnectedError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from ..core import errors
from ..core.jid import parse
from ..core.model import Actor
from ..protocol import (
    NS_BLOCKING,
    NS_COMMANDS,
    NS_COMPONENT,
    NS_DATA,
    NS_MAM,
    NS_PUBSUB,
    NS_PUBSUB_EVENT,
    NS_PUBSUB_OWNER,
    NS_STANZAS,
)
from ..spamguard.verdict import Verdict

log = logging.getLogger(__name__)

#: Hard shape limits checked before any adapter sees a stanza (T8).
MAX_DEPTH = 48
MAX_ELEMENTS = 20000


@dataclass(frozen=True, slots=True)
class Request:
    """An inbound stanza as adapters see it."""

    stanza: Any            # the slixmpp stanza (Iq, Message or Presence)
    xml: ET.Element        # its element tree
    sender: str            # full JID as stamped by the host server
    to: str                # normalised bare JID it was addressed to
    to_full: str
    actor: Actor           # normalised bare JID of the sender

    @property
    def payload(self) -> ET.Element | None:
        for child in self.xml:
            if not child.tag.endswith("}error"):
                return child
        return None


class RawXml(str):
    """An iq result payload already serialised (well-formed, namespaced XML): sent as is,
    without building and re-serialising an element tree (pages of stored items)."""


IqHandler = Callable[[Request, ET.Element], Awaitable["ET.Element | RawXml | None"]]
StanzaHandler = Callable[[Request], Awaitable[None]]
ErrorMapper = Callable[[errors.BlogError], ET.Element]
#: (kind, sender, action) -> accept, drop silently, or reject with an XMPP condition (spamguard)
Gate = Callable[[str, str, str], Verdict]


def error_element(etype: str, condition: str, text: str = "") -> ET.Element:
    """A plain RFC 6120 <error/> for refusals that are the wire layer's own."""
    err = ET.Element(f"{{{NS_COMPONENT}}}error", {"type": etype})
    ET.SubElement(err, f"{{{NS_STANZAS}}}{condition}")
    if text:
        ET.SubElement(err, f"{{{NS_STANZAS}}}text").text = text
    return err


def shape_error(xml: ET.Element, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a stanza is too deep or too large to process, or None."""
    count = 0
    stack = [(xml, 1)]
    while stack:
        el, depth = stack.pop()
        count += 1
        if depth > max_depth:
            return f"nested deeper than {max_depth} elements"
        if count > MAX_ELEMENTS:
            return f"more than {MAX_ELEMENTS} elements"
        stack.extend((child, depth + 1) for child in el)
    return None


#: the kinds of message the router dispatches, by payload
EVENT, FORM, CHAT = "event", "form", "chat"

#: the connection that received the stanza being handled: what a handler sends goes out
#: on it, so a request's results and its answer keep their order (xmpp/pool.py)
RECEIVED_ON: contextvars.ContextVar[BlogComponent | None] = contextvars.ContextVar("received_on", default=None)

#: slot probes: rounds of random return resources, larger each time (a connection holding one
#: of K slots answers 1 in K of them; the 336 in all find a slot among 64 with 99.5 % certainty,
#: and a connection wrongly taken for slotless only gives its slot back and tries again)
PROBE_ROUNDS = (16, 64, 256)
PROBE_WAIT = 2.0
#: pings that must all come back on this connection from the resource it found
CONFIRM_PINGS = 3
#: a connection that got no slot tries again this soon (a slot frees when a worker dies)
NO_SLOT_RETRY = 3.0


def stanza_bytes(data: str, limit: int) -> int:
    """The size of a serialised stanza as measured against `limit`: its UTF-8 length, encoded
    only when it could be over (a character is at most 4 bytes; below that, its length)."""
    return len(data) if len(data) <= limit // 4 else len(data.encode("utf-8"))


#: what a pubsub action costs in spamguard's limits (the rest is free to ask)
_PUBSUB_LIMITS = {"publish": "publish", "retract": "publish", "subscribe": "subscribe", "unsubscribe": "subscribe",
                  "create": "owner"}


def pubsub_action(pubsub: ET.Element) -> ET.Element | None:
    """The one action a <pubsub/> request asks for (XEP-0060), or None if it asks none or several.

    Its children of the pubsub namespace, less the ones that only qualify an action
    (<options/>, <publish-options/>, and <configure/> beside <create/>); a lone <configure/>
    is the action. Both spamguard's classification and the pubsub dispatcher read this, so
    what is charged is what runs."""
    ns = pubsub.tag.partition("}")[0] + "}"
    own = [c for c in pubsub if c.tag.startswith(ns)]
    actions = [c for c in own if c.tag[len(ns):] not in ("options", "publish-options", "configure")] or own
    return actions[0] if len(actions) == 1 else None


def iq_action(ns: str, payload: ET.Element, iq_type: str) -> str:
    """What an iq asks, for spamguard's limits: publish, subscribe, owner, report, search, or iq.

    A pubsub request is classified by the one action its handler will run (the child of the
    pubsub namespace, `pubsub_action`), so no decoy element of another namespace can make it
    look like something cheaper."""
    if ns == NS_PUBSUB and iq_type == "set":
        action = pubsub_action(payload)
        return "iq" if action is None else _PUBSUB_LIMITS.get(action.tag.rpartition("}")[2], "iq")
    if ns == NS_PUBSUB_OWNER and iq_type == "set":
        return "owner"
    if ns == NS_BLOCKING and iq_type == "set":
        return "report"
    if ns == NS_COMMANDS and payload.get("node", "").endswith("#search"):
        return "search"
    if ns == NS_MAM and iq_type == "set" and any(
            f.get("var", "").endswith("fulltext") and "".join(f.itertext()).strip()
            for f in payload.iter(f"{{{NS_DATA}}}field")):
        return "search"  # a full-text archive query reads the index or scans a node: a search's limit
    return "iq"


def message_kind(xml: ET.Element) -> str:
    """How the router sees a message: a bounce, a pubsub event (whatever else it carries, and
    wherever the <event/> is among its children), a submitted form, or a chat message."""
    if xml.get("type") == "error":
        # A bounce of what we sent (it echoes our event): not a push to rate-limit. A dead
        # server bounces a whole batch at once, and a dropped bounce is a lost retry.
        return "bounce"
    tags = {child.tag for child in xml}
    if f"{{{NS_PUBSUB_EVENT}}}event" in tags:
        return EVENT
    if f"{{{NS_DATA}}}x" in tags:
        return FORM
    return CHAT


def presence_action(xml: ET.Element) -> str:
    """Subscription requests share the subscribe limits; other presences are 'presence'."""
    return "subscribe" if xml.get("type") == "subscribe" else "presence"


class InOrder:
    """Runs coroutines one at a time per key, in arrival order; different keys run concurrently.

    Stanzas from one sender are handled in the order they were sent (a `follow`
    then an `unfollow` must not swap), without one slow sender holding up others.
    """

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        prev = self._tails.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = mine
        try:
            if prev is not None:
                await prev
            await work()
        finally:
            mine.set_result(None)
            if self._tails.get(key) is mine:
                del self._tails[key]


class BlogComponent(slixmpp.ComponentXMPP):
    def __init__(self, jid: str, secret: str, host: str, port: int, error_for: ErrorMapper,
                 max_reconnect_delay: float = 60.0, *, gate: Gate, max_depth: int = MAX_DEPTH,
                 max_stanza_bytes: int = 400 * 1024, find_slot: bool = False, name: str = "",
                 ping_target: str = "") -> None:
        super().__init__(jid, secret, host, port)
        #: with ejabberd's domain_balancing (type: destination), answers reach the connection
        #: whose slot their full `to` hashes to: find a resource of ours that hashes to this one
        self.find_slot = find_slot
        #: the resource answers to our requests reach this connection at (None: the bare JID does)
        self.rid: str | None = None
        self._no_slot = False
        #: the host is up but every slot is held: this connection waits to take one (a spare)
        self.spare = False
        #: the handshake is done and the stream not closed (online: and it holds a slot)
        self._stream_up = False
        #: how logs name this connection among several ("" when it is the only one)
        self.name = name
        #: maps a domain error to its <error/> (pubsub/errors.py)
        self.error_for = error_for
        #: admits or refuses each inbound stanza before its adapter (spamguard)
        self.gate = gate
        self.max_depth = max_depth
        self.max_stanza_bytes = max_stanza_bytes
        #: stanzas we refused to write because they were too large (never sent)
        self.oversize = 0
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True
        self.max_reconnect_delay = max_reconnect_delay
        #: what slot probes ping: the host's own domain, which answers pings
        self.server_ping_target = ping_target or jid.split(".", 1)[-1]
        self.online = asyncio.Event()
        #: why the last connection attempt failed, in words an admin can act on (None once connected)
        self.problem: str | None = None
        self.stopping = False
        self._iq: dict[tuple[str, str], IqHandler] = {}
        self._message: dict[str, list[StanzaHandler]] = {}
        self._presence: list[StanzaHandler] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_order = InOrder()
        self._on_online: list[Callable[[], None]] = []
        self.last_stream_error: str | None = None
        # slixmpp's component roster would answer probes and subscriptions by
        # itself (a probe gets 'unsubscribed'): switch all of that off.
        self.del_event_handler("presence_probe", self._handle_probe)
        for name, handler in (("presence_available", self._handle_available),
                              ("presence_dnd", self._handle_available),
                              ("presence_xa", self._handle_available),
                              ("presence_chat", self._handle_available),
                              ("presence_away", self._handle_available),
                              ("presence_unavailable", self._handle_unavailable),
                              ("presence_subscribe", self._handle_subscribe),
                              ("presence_subscribed", self._handle_subscribed),
                              ("presence_unsubscribe", self._handle_unsubscribe),
                              ("presence_unsubscribed", self._handle_unsubscribed),
                              ("roster_subscription_request", self._handle_new_subscription)):
            self.del_event_handler(name, handler)
        for name in ("IM", "IMError", "Presence"):
            self.remove_handler(name)
        self.register_handler(Callback("xmppblog iq", MatchXPath(f"{{{NS_COMPONENT}}}iq"), self._spawn_iq))
        self.register_handler(Callback("xmppblog message", MatchXPath(f"{{{NS_COMPONENT}}}message"),
                                       self._spawn_message))
        self.register_handler(Callback("xmppblog presence", MatchXPath(f"{{{NS_COMPONENT}}}presence"),
                                       self._spawn_presence))
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("disconnected", self._disconnected)
        self.add_event_handler("stream_error", self._stream_error)
        self.add_event_handler("connection_failed", self._connection_failed)

    # ------------------------------------------------------------ registration

    def on_iq(self, namespace: str, iq_type: str, handler: IqHandler) -> None:
        """Route <iq type=iq_type> whose payload is in `namespace` to `handler`.

        The handler returns the result payload (or None for an empty result)
        or raises a BlogError.
        """
        self._iq[(namespace, iq_type)] = handler

    def on_message(self, kind: str, handler: StanzaHandler) -> None:
        """Route messages of one kind (EVENT, FORM, CHAT; see `message_kind`) to `handler`."""
        self._message.setdefault(kind, []).append(handler)

    def on_message_error(self, handler: StanzaHandler) -> None:
        """Route <message type='error'/> (bounces of what we sent) to `handler`. Never answered."""
        self.on_message("bounce", handler)

    def on_presence(self, handler: StanzaHandler) -> None:
        self._presence.append(handler)

    def on_online(self, callback: Callable[[], None]) -> None:
        self._on_online.append(callback)

    # ------------------------------------------------------------ connection

    def reschedule_connection_attempt(self) -> asyncio.Future | None:  # type: ignore[override]
        # slixmpp backs off up to 300 s; the admin chose our cap.
        if self._current_connection_attempt is None:
            return None
        self._connect_loop_wait = min(self.max_reconnect_delay, self._connect_loop_wait * 2 + 1)
        self._current_connection_attempt = asyncio.ensure_future(self._connect_loop(), loop=self.loop)
        return self._current_connection_attempt

    @property
    def return_jid(self) -> str:
        """The JID our requests go out from: answers to it come back on this connection."""
        return f"{self.boundjid.bare}/{self.rid}" if self.rid else self.boundjid.bare

    def _session_start(self, _event: object) -> None:
        self.last_stream_error = None
        self.problem = None
        self.rid = None
        self._stream_up = True
        log.info("connected to %s:%s as component %s%s", self.server_host, self.server_port, self.boundjid,
                 f" ({self.name})" if self.name else "")
        if self.find_slot:
            self.background(self._claim_slot())
            return
        self._came_online()

    def _came_online(self) -> None:
        self.spare = False
        self._reconnect_delay = 1.0
        self.online.set()
        for cb in self._on_online:
            cb()

    async def _claim_slot(self) -> None:
        """Find a return resource whose answers the host routes to this connection: ping the
        host from random resources; the ones answered here hash to our slot. None answered
        after every round: the host gave this connection no slot (all K are held) and routes
        nothing to it; close it and try again soon, when a slot may be free."""
        transport = self.transport
        for size in PROBE_ROUNDS:
            rids = [secrets.token_hex(6) for _ in range(size)]
            answered = await asyncio.gather(*(self._ping_from(rid) for rid in rids))
            if self.transport is not transport or self.stopping:
                return
            mine = [rid for rid, ok in zip(rids, answered, strict=True) if ok]
            for rid in mine[:3]:
                # a host that balances by destination sends every answer to one resource to the
                # same connection; one that picks at random (no domain_balancing, or `random`,
                # `source`) only seemed to, and would scatter our answers later
                if all(await asyncio.gather(*(self._ping_from(rid) for _ in range(CONFIRM_PINGS)))):
                    self.rid = rid
                    log.info("component connection%s holds a slot: answers come back to %s",
                             f" {self.name}" if self.name else "", self.return_jid)
                    self._came_online()
                    return
            if mine:
                self.problem = ("answers to one resource came back on different connections: the host does not "
                                "balance by destination (ejabberd: domain_balancing type: destination)")
                log.error("component connection%s: %s", f" {self.name}" if self.name else "", self.problem)
                break
        else:
            self.problem = "the host routes nothing to this connection (every domain_balancing slot is held)"
            self.spare = True
            log.info("component connection%s holds no slot (%d probes unanswered): every slot is held; "
                     "trying again in %.0fs", f" {self.name}" if self.name else "", sum(PROBE_ROUNDS), NO_SLOT_RETRY)
        self._no_slot = True
        self.abort()

    async def _ping_from(self, rid: str) -> bool:
        iq = self.make_iq_get(ito=self.server_ping_target, ifrom=f"{self.boundjid.bare}/{rid}")
        iq.append(ET.Element("{urn:xmpp:ping}ping"))
        try:
            await iq.send(timeout=PROBE_WAIT)
        except IqError:
            return True  # an error answer came back here too
        except (IqTimeout, NotConnectedError):
            return False
        return True

    def _stream_error(self, error: Any) -> None:
        cond = error["condition"]
        self.last_stream_error = cond
        self.spare = False
        hint = {
            "not-authorized": "the host server refused our handshake: check [component] secret",
            "host-unknown": "the host server has no Component entry for this jid: check [component] jid",
            "conflict": "another process is already connected as this component (Prosody accepts one "
                        "connection per component; several workers need ejabberd's domain_balancing, "
                        "docs/scale-out.md)",
            "invalid-from": "BUG: a stanza was sent from outside the component's domain",
        }.get(cond, "")
        log.error("stream error from host server: %s %s%s", cond, error["text"] or "",
                  f" ({hint})" if hint else "")
        self.problem = f"stream error {cond}" + (f": {hint}" if hint else "")

    def _connection_failed(self, reason: Any) -> None:
        self.spare = False
        log.error("cannot reach host server %s:%s: %s; retrying", self.server_host, self.server_port, reason)
        self.problem = f"cannot reach it: {reason}"

    def _disconnected(self, reason: Any) -> None:
        was_online = self.online.is_set()
        self.online.clear()
        self._stream_up = False
        if self.stopping:
            return
        if self._no_slot:  # not a failure: wait for a free slot at a steady pace
            self._no_slot = False
            self.loop.call_later(NO_SLOT_RETRY, self._reconnect)
            return
        delay = getattr(self, "_reconnect_delay", 1.0)
        self._reconnect_delay = min(self.max_reconnect_delay, delay * 2)
        if was_online:
            log.warning("disconnected from host server (%s); reconnecting in %.0fs", reason or "closed", delay)
        else:
            log.warning("connection closed before the handshake completed; reconnecting in %.0fs", delay)
        self.loop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if not self.stopping and not self.online.is_set():
            self.connect()

    async def drain(self, timeout: float = 10.0) -> None:
        """Refuse new requests and wait for the in-flight ones to finish."""
        self.stopping = True
        if self._tasks:
            log.info("waiting for %d in-flight request(s)", len(self._tasks))
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Close the stream (after `drain`)."""
        self.stopping = True
        self.cancel_connection_attempt()
        if self.transport is not None:
            await self.disconnect(wait=2.0)

    # ------------------------------------------------------------ dispatch

    def background(self, coro: Awaitable[None]) -> None:
        """Run work that is not a reply (probes, resyncs) as a task `drain` waits for."""
        if self.stopping:
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn(self, stanza: Any, work: Callable[[], Awaitable[None]]) -> None:
        key = stanza.xml.get("from", "").split("/", 1)[0].lower()
        RECEIVED_ON.set(self)  # copied into the task's context: its sends go out on this connection
        task = asyncio.ensure_future(self._in_order.run(key, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_iq(self, iq: Any) -> None:
        if iq["type"] not in ("get", "set"):
            return
        if self.stopping:
            self._reply_error(iq, error_element("wait", "service-unavailable", "shutting down"))
            return
        self._spawn(iq, lambda: self._handle_iq(iq))

    def _spawn_message(self, msg: Any) -> None:
        kind = message_kind(msg.xml)
        self._spawn(msg, lambda: self._handle_stanza(msg, kind, self._message.get(kind, [])))

    def _spawn_presence(self, pres: Any) -> None:
        self._spawn(pres, lambda: self._handle_stanza(pres, presence_action(pres.xml), self._presence))

    def _request(self, stanza: Any) -> Request:
        xml = stanza.xml
        sender = parse(xml.get("from", ""))
        to = parse(xml.get("to", ""))
        return Request(stanza, xml, str(sender), to.bare, str(to), Actor(sender.bare))

    async def _handle_iq(self, iq: Any) -> None:
        xml = iq.xml
        try:
            req = self._request(iq)
            problem = shape_error(xml, self.max_depth)
            if problem:
                raise errors.BadRequest(f"stanza {problem}")
            payload = req.payload
            if payload is None:
                raise errors.BadRequest("an iq get/set needs exactly one payload element")
            ns = payload.tag[1:].split("}", 1)[0] if payload.tag.startswith("{") else ""
            verdict = self.gate("iq", req.sender, iq_action(ns, payload, iq["type"]))
            if not verdict.accepted:
                condition = verdict.condition or "policy-violation"
                self._reply_error(iq, error_element("auth" if condition == "forbidden" else "wait",
                                                    condition, "refused by policy"))
                return
            handler = self._iq.get((ns, iq["type"]))
            if handler is None:
                self._reply_error(iq, error_element("cancel", "service-unavailable"))
                return
            result = await handler(req, payload)
        except errors.BlogError as exc:
            level = logging.WARNING if isinstance(exc, errors.StorageUnavailable) else logging.INFO
            log.log(level, "iq refused: from=%s to=%s id=%s error=%s: %s",
                    xml.get("from"), xml.get("to"), xml.get("id"), type(exc).__name__, exc.text)
            self._reply_error(iq, self.error_for(exc))
            return
        except Exception:
            log.exception("iq failed: from=%s to=%s id=%s", xml.get("from"), xml.get("to"), xml.get("id"))
            self._reply_error(iq, error_element("wait", "internal-server-error", "internal error"))
            return
        if isinstance(result, RawXml):
            data = (f"<iq type='result' to={quoteattr(xml.get('from', ''))} from={quoteattr(xml.get('to', ''))}"
                    f" id={quoteattr(xml.get('id', ''))}>{result}</iq>")
        else:
            reply = self._reply_to(iq, "result")
            if result is not None:
                reply.append(result)
            data = str(reply)
        size = stanza_bytes(data, self.max_stanza_bytes)
        if size > self.max_stanza_bytes:
            log.error("iq answer too large, refused: from=%s id=%s bytes=%d (limit %d)", xml.get("from"),
                      xml.get("id"), size, self.max_stanza_bytes)
            self.oversize += 1
            self._reply_error(iq, error_element("wait", "resource-constraint",
                                                "the answer is too large; ask for less (RSM max, fewer items)"))
            return
        if not self.send_raw_stanza(data, size):
            log.warning("reply lost, not connected: to=%s id=%s", xml.get("from"), xml.get("id"))

    @staticmethod
    def _reply_to(stanza: Any, rtype: str) -> Any:
        """An empty reply (addresses swapped, same id), built fresh: slixmpp's `reply()`
        deep-copies the request first, which recurses past Python's limit on a
        1,000-deep hostile payload (T8) before we could even refuse it."""
        xml = stanza.xml
        return stanza.__class__(stanza.stream, sto=xml.get("from"), sfrom=xml.get("to"), sid=xml.get("id"),
                                stype=rtype)

    async def _handle_stanza(self, stanza: Any, action: str, handlers: list[StanzaHandler]) -> None:
        xml = stanza.xml
        try:
            req = self._request(stanza)
            problem = shape_error(xml, self.max_depth)
            if problem:
                raise errors.BadRequest(f"stanza {problem}")
            verdict = self.gate(stanza.name, req.sender, action)
            if not verdict.accepted:
                if (verdict.condition and stanza.name == "message"
                        and xml.get("type") not in ("error", "headline")):
                    self._reply_error(stanza, error_element("wait", verdict.condition, "refused by policy"))
                return
            for handler in handlers:
                await handler(req)
        except errors.BlogError as exc:
            log.info("%s refused: from=%s to=%s id=%s error=%s: %s", stanza.name,
                     xml.get("from"), xml.get("to"), xml.get("id"), type(exc).__name__, exc.text)
            if stanza.name == "message" and xml.get("type") != "error":
                self._reply_error(stanza, self.error_for(exc))
        except Exception:
            log.exception("%s failed: from=%s to=%s id=%s", stanza.name, xml.get("from"),
                          xml.get("to"), xml.get("id"))

    def _reply_error(self, stanza: Any, err: ET.Element) -> None:
        xml = stanza.xml
        if not xml.get("from"):
            return
        reply = self._reply_to(stanza, "error")
        reply.append(err)
        self._send(reply)

    def _send(self, stanza: Any) -> None:
        if self.transport is None:
            log.warning("reply lost, not connected: to=%s id=%s", stanza["to"], stanza["id"])
            return
        stanza.send()

    # ------------------------------------------------------------ the one way out

    def _out(self, data: str | bytes, largest: int) -> bool:
        """Write to the host, unless a stanza in `data` (the largest is `largest` bytes) is over the limit."""
        if largest > self.max_stanza_bytes:
            self.oversize += 1
            log.error("stanza too large, not sent: bytes=%d limit=%d start=%r", largest, self.max_stanza_bytes,
                      (data[:120] if isinstance(data, str) else data[:120].decode(errors="replace")))
            return False
        super().send_raw(data)
        return True

    def send_raw(self, data: str | bytes) -> None:
        """slixmpp writes every stanza it builds here (replies, our requests): one stanza per call."""
        self._out(data, len(data) if isinstance(data, bytes) else stanza_bytes(data, self.max_stanza_bytes))

    async def writable(self, high_water: int = 4 * 1024 * 1024) -> None:
        """Wait while more than `high_water` bytes we wrote are still queued in this process
        (back-pressure between the chunks of a large fan-out)."""
        transport = self.transport
        while (transport is not None and not transport.is_closing()
               and transport.get_write_buffer_size() > high_water):
            await asyncio.sleep(0.002)

    async def processed(self, host_domain: str, timeout: float = 15.0) -> bool:
        """True once the host server has processed everything we wrote so far.

        Nothing acknowledges a component's stanzas (THREATS.md fact 7), and bytes in
        the kernel are not safe either: when this process dies with unread input,
        the kernel resets the connection and drops what it had not sent yet. The
        host handles one stream's stanzas in order, so any answer to a ping written
        after them proves they were routed. One round trip per outbox batch.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        iq = self.make_iq_get(ito=host_domain, ifrom=self.return_jid)
        iq.append(ET.Element("{urn:xmpp:ping}ping"))
        try:
            await iq.send(timeout=timeout)
        except IqError as exc:
            # An error answer (a host without mod_ping) also comes after everything before it.
            log.debug("delivery ping answered with an error (%s): the batch was processed",
                      exc.iq["error"]["condition"])
        except (IqTimeout, NotConnectedError):
            return False
        return transport is self.transport and not transport.is_closing()

    async def disco(self, to: str, namespace: str, timeout: float = 10.0) -> ET.Element | None:
        """Ask `to` a disco#info or disco#items query from our own JID: its <query/>, or None
        (an error answer, no answer, or no stream)."""
        iq = self.make_iq_get(ito=to, ifrom=self.return_jid)
        iq.append(ET.Element(f"{{{namespace}}}query"))
        try:
            reply = await iq.send(timeout=timeout)  # type: ignore[no-untyped-call]
        except (IqError, IqTimeout, NotConnectedError):
            return None
        query: ET.Element | None = reply.xml.find(f"{{{namespace}}}query")
        return query

    def request_iq(self, to: str, itype: str, frm: str | None = None) -> Any:
        """An iq request to send on this connection, from `frm` or from our return JID (so that
        the answer comes back here)."""
        return self.make_iq(ito=to, ifrom=frm or self.return_jid, itype=itype)

    def send_raw_stanza(self, data: str, largest: int | None = None) -> bool:
        """Hand pre-serialised stanzas to the live stream; False if there is none or a stanza is too large.

        Args:
            largest: the size in bytes of the largest stanza in `data` when it holds several
                (the outbox's bulk writes); by default `data` is one stanza and is measured.
        """
        # a connection still looking for its slot answers what reaches it already
        if self.transport is None or not self._stream_up:
            return False
        if largest is None:
            largest = stanza_bytes(data, self.max_stanza_bytes)
        return self._out(data, largest)
