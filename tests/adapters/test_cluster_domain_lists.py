# SPDX-License-Identifier: AGPL-3.0-or-later
"""The admins' run-time domain lists reach every worker of a cluster (#16, review item 13): an
admin command is handled by one worker, and the others read the lists again every few seconds."""

from __future__ import annotations

import asyncio
import time

from ..support.world import World

ADMIN = "admin@example.org/pc"
COMMANDS = "http://jabber.org/protocol/commands"


def block(domain: str, action: str = "add") -> str:
    return (f"<command xmlns='{COMMANDS}' node='xmppblog#domain-block' action='execute'>"
            f"<x xmlns='jabber:x:data' type='submit'><field var='domain'><value>{domain}</value></field>"
            f"<field var='action'><value>{action}</value></field></x></command>")


async def disco_from(world: World, sender: str) -> str | None:
    """The type of the answer to a disco#info from `sender` (None: none)."""
    out = await world.receive(f"<iq type='get' id='d1' from='{sender}' to='{world.service_jid}'>"
                              "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    return next((o.get("type") for o in out if o.get("id") == "d1"), None)


async def until(condition, seconds: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_a_domain_blocked_through_one_worker_is_refused_by_another(tmp_path):
    a = await World.start(tmp_path)
    b = await World.start(tmp_path)  # a second worker on the same database
    follow = asyncio.create_task(b.app.follow_shared_lists(0.05))
    try:
        assert await disco_from(b, "mallory@spam.example/x") == "result"
        assert (await a.iq(ADMIN, a.service_jid, "set", block("spam.example"))).get("type") == "result"
        assert a.app.guard.domain_refused("spam.example"), "the worker that handled the command: at once"
        assert await until(lambda: b.app.guard.domain_refused("spam.example")), "the other worker: soon"
        assert await disco_from(b, "mallory@spam.example/x") == "error"
        await a.iq(ADMIN, a.service_jid, "set", block("spam.example", "remove"))
        assert await until(lambda: not b.app.guard.domain_refused("spam.example"))
        assert await disco_from(b, "mallory@spam.example/x") == "result"
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        await b.close()
        await a.close()


RTBL = '[spamguard]\nrtbl_services = ["rtbl.example, muc_bans"]\n'


async def test_a_block_list_push_received_by_one_worker_reaches_the_others(tmp_path):
    """Pushes of a real-time block list reach the worker holding the service JID's slot only;
    it counts the change (cluster_versions) and the others load the list again from its source."""
    import hashlib

    from ..support.stanzas import PubsubPeer, event, responder, subscribe

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    rtbl = PubsubPeer("rtbl.example")
    rtbl.items["muc_bans"] = [(sha("spam.example"), "")]
    a = await World.start(tmp_path, responder=responder(rtbl), extra=RTBL)
    b = await World.start(tmp_path, responder=responder(rtbl), extra=RTBL)  # the same database
    for w in (a, b):
        w.app.inbound.blocklist_changed = w.app._blocklist_changed  # as app.py wires a cluster's workers
        await w.reconnected()  # each worker loads the list once connected
    follow = asyncio.create_task(b.app.follow_shared_lists(0.05))
    blog = "alice@blog.example.org"
    try:
        assert not b.app.guard.blocklists.blocks("x@evil2.example", "evil2.example")
        assert b.app.guard.blocklists.blocks("x@spam.example", "spam.example"), "loaded at connect"
        rtbl.items["muc_bans"].append((sha("evil2.example"), ""))
        await a.receive(event("rtbl.example", "muc_bans",
                              f"<items node='muc_bans'><item id='{sha('evil2.example')}'/></items>"))
        assert a.app.guard.blocklists.blocks("x@evil2.example", "evil2.example"), "the worker that got the push"
        assert await until(lambda: b.app.guard.blocklists.blocks("y@evil2.example", "evil2.example"), 5), \
            "another worker, within a few seconds"
        reply = await b.iq("x@evil2.example/r", blog, "set", subscribe("x@evil2.example"))
        assert reply.get("type") == "error", "and refuses what it lists"
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        await b.close()
        await a.close()
