# SPDX-License-Identifier: AGPL-3.0-or-later
"""Several connections as one component (xmpp/pool.py): a request's results and answer leave
on the connection it came in on; our own stanzas on one connection, which the delivery ping
then proves; the pool is online while any connection holds a slot."""

from __future__ import annotations

import asyncio

from xmppblog.pubsub.errors import error_for
from xmppblog.spamguard.verdict import ACCEPT
from xmppblog.xmpp.pool import ComponentPool, connections

from ..support.world import Wire, parse_out, stanza


def pool_of_two() -> tuple[ComponentPool, Wire, Wire]:
    pool = connections(Wire, 2, True, "blog.example.org", "s", "127.0.0.1", 5347, error_for,
                       gate=lambda *_: ACCEPT, ping_target="example.org")
    assert isinstance(pool, ComponentPool)
    a, b = pool.members
    assert isinstance(a, Wire) and isinstance(b, Wire) and a.find_slot and b.find_slot
    return pool, a, b


async def settle(*wires: Wire) -> None:
    for _ in range(20):
        await asyncio.sleep(0)
        pending = [t for w in wires for t in w._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)


async def test_results_and_the_answer_leave_on_the_connection_the_request_came_in_on():
    pool, a, b = pool_of_two()

    async def handler(req, payload):
        assert pool.send_raw_stanza(f"<message to='{req.sender}' from='blog.example.org'><body>first</body></message>")
        return None

    pool.on_iq("urn:example:q", "get", handler)
    b._spawn_event(stanza("<iq type='get' id='q1' from='u@example.org/r' to='blog.example.org'>"
                          "<q xmlns='urn:example:q'/></iq>"))
    await settle(a, b)
    assert a.out == []
    sent = [parse_out(o) for o in b.out]
    assert [el.tag.rpartition("}")[2] for el in sent] == ["message", "iq"], "results, then the answer, in order"
    assert sent[1].get("type") == "result" and sent[1].get("id") == "q1"


async def test_own_stanzas_go_out_on_one_connection_and_the_ping_goes_on_it():
    pool, a, b = pool_of_two()
    assert pool.send_raw_stanza("<message to='x@example.org' from='blog.example.org'/>")
    writer = a if a.out else b
    assert pool.send_raw_stanza("<message to='y@example.org' from='blog.example.org'/>")
    assert len(writer.out) == 2, "the same connection while it is up"
    pinged = []

    async def processed(host: str, timeout: float = 15.0) -> bool:
        pinged.append(host)
        return True

    writer.processed = processed  # type: ignore[method-assign]
    assert await pool.processed("example.org") and pinged == ["example.org"]
    assert await pool.processed("example.org") and pinged == ["example.org"], "nothing written since: no ping"
    assert pool.send_raw_stanza("<message to='w@example.org' from='blog.example.org'/>")
    writer.online.clear()  # its connection dropped mid-batch: what it wrote is not proven
    other = b if writer is a else a
    other.processed = processed  # type: ignore[method-assign]
    assert pool.send_raw_stanza("<message to='z@example.org' from='blog.example.org'/>") and other.out
    assert not await pool.processed("example.org"), "the rest went out on another connection: not enough"
    assert pool.send_raw_stanza("<message to='v@example.org' from='blog.example.org'/>")
    assert await pool.processed("example.org"), "a batch written on one live connection is proven"


async def test_the_pool_is_online_while_any_connection_holds_a_slot():
    pool, a, b = pool_of_two()
    for w in (a, b):
        w.online.clear()
    came: list[str] = []
    pool.on_online(lambda: came.append("up"))
    pool.on_slot(lambda: came.append("another slot"))
    a._came_online()
    assert pool.online.is_set() and came == ["up"]
    b._came_online()
    assert came == ["up", "another slot"], "online once; each later slot told apart (presence is asked again)"
    a.online.clear()
    pool._member_offline(None)
    assert pool.online.is_set(), "b still holds a slot"
    b.online.clear()
    pool._member_offline(None)
    assert not pool.online.is_set()
    assert not pool.send_raw_stanza("<message to='x@example.org' from='blog.example.org'/>")


def test_a_pool_whose_connections_all_wait_for_a_slot_is_a_spare():
    pool, a, b = pool_of_two()
    for w in (a, b):
        w.online.clear()
    pool.online.clear()
    a.spare = True
    assert not pool.spare, "one connection is down for another reason"
    b.spare = True
    assert pool.spare
    a._came_online()
    assert not pool.spare and not a.spare
