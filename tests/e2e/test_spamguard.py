# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard end to end: a scripted rogue service on beta pushes what nobody asked for."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import slixmpp
from slixmpp.xmlstream import ET

from ..conftest import ADVERSARIAL
from ..support import ports
from ..support.prosody import SECRET
from .test_im import greeted

ROGUE = "rogue.beta.test"
ATOM = "http://www.w3.org/2005/Atom"


def event(node: str, item_id: str, title: str, author: str) -> str:
    return (f"<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{node}'>"
            f"<item id='{item_id}'><entry xmlns='{ATOM}'><title>{title}</title>"
            f"<author><uri>xmpp:{author}</uri></author></entry></item></items></event>")


class Rogue(slixmpp.ComponentXMPP):
    """Answers subscribe requests (so it can be followed), then pushes whatever the test says."""

    def __init__(self, ip: str, xmppblog_keys: str | None = None, rtbl: tuple[str, ...] = (),
                 jid: str = ROGUE) -> None:
        super().__init__(jid, SECRET, ip, ports.COMPONENT)
        self.rtbl = rtbl
        #: pretend to be an xmppblog server publishing this (base64) key
        self.xmppblog_keys = xmppblog_keys
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.unsubscribed: list[str] = []
        self.register_handler(slixmpp.xmlstream.handler.Callback(
            "pubsub", slixmpp.xmlstream.matcher.MatchXPath("{jabber:component:accept}iq"), self._iq))

    def _iq(self, iq) -> None:
        if iq["type"] not in ("get", "set"):
            return
        xml = ET.tostring(iq.xml, encoding="unicode")
        reply = iq.reply(clear=True)
        if self.xmppblog_keys and "disco#info" in xml:
            reply.append(ET.fromstring("<query xmlns='http://jabber.org/protocol/disco#info'>"
                                       "<feature var='urn:xmppblog:0'/></query>"))
        elif self.xmppblog_keys and "urn:xmppblog:keys:0" in xml:
            reply.append(ET.fromstring(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmppblog:keys:0'>"
                f"<item id='k1'><key xmlns='urn:xmppblog:0' algorithm='ed25519'>{self.xmppblog_keys}</key>"
                "</item></items></pubsub>"))
        elif "node=\"rtbl\"" in xml and ("<items" in xml or ":items" in xml):
            items = "".join(f"<item id='{h}'/>" for h in self.rtbl)
            reply.append(ET.fromstring(
                f"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='rtbl'>{items}</items></pubsub>"))
        elif "<subscribe" in xml or ":subscribe" in xml:
            reply.append(ET.fromstring(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                f"<subscription node='news' jid='{iq['from'].bare}' subscription='subscribed'/></pubsub>"))
        elif "unsubscribe" in xml:
            self.unsubscribed.append(iq["to"].full)
        elif "<items" in xml or ":items" in xml:
            reply.append(ET.fromstring("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='news'/></pubsub>"))
        reply.send()

    def push(self, frm: str, xml: str, to: str = "blog.alpha.test") -> None:
        self.send_raw(f"<message from='{frm}' to='{to}' type='headline'>{xml}</message>")


async def test_rogue_service_pushes_are_dropped_and_counted(clients, component, net):
    rogue = Rogue(net["beta"].ip)
    started = asyncio.get_running_loop().create_future()
    rogue.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    rogue.connect()
    await asyncio.wait_for(started, 10)
    victim = await clients("walter")
    await greeted(victim)
    try:
        # T1: an event for a node nobody here follows, from a bare JID: dropped, answered with one unsubscribe
        for i in range(3):
            rogue.push(f"spam@{ROGUE}", event("urn:xmpp:microblog:0", f"s{i}", "T1 spam", f"spam@{ROGUE}"))
        component.wait_log("reason=no-subscription", count=3)
        await asyncio.sleep(0.3)
        assert rogue.unsubscribed == [f"spam@{ROGUE}"], "exactly one unsubscribe, however much it pushes"
        # a legitimate follow of the rogue's node (by URI), then pushes that claim someone else's authorship
        assert await victim.say(f"follow xmpp:{ROGUE}?;node=news") == f"Now following {ROGUE}"
        rogue.push(ROGUE, event("news", "forged", "T-author forged", "alice@alpha.test"))
        rogue.push(ROGUE, event("news", "honest", "legit news item", ROGUE))
        # T2: the right node pushed from another JID of the same domain
        rogue.push(f"mallory@{ROGUE}", event("news", "t2", "T2 spoofed origin", ROGUE))
        honest = await victim.inbox.wait(lambda m: "legit news item" in (m["body"] or ""))
        assert honest is not None, "legitimate traffic alongside the attack must arrive"
        component.wait_log("reason=author-local")
        await asyncio.sleep(0.5)
        bodies = " ".join(m["body"] or "" for m in victim.inbox.items)
        timeline = await victim.say("timeline 20")
        for name, spam, attempts in (("T1 event for a node nobody follows", "T1 spam", 3),
                                     ("forged authorship on a followed node", "T-author forged", 1),
                                     ("T2 followed node pushed from another JID", "T2 spoofed origin", 1)):
            reached = int(spam in bodies or spam in timeline)
            ADVERSARIAL.append((name, attempts, reached))
        ADVERSARIAL.append(("legitimate item sent alongside (must arrive)", 1, int(honest is not None)))
        for spam in ("T1 spam", "T-author forged", "T2 spoofed origin"):
            assert spam not in bodies and spam not in timeline, spam
        assert await victim.say(f"unfollow xmpp:{ROGUE}?;node=news") == f"You no longer follow {ROGUE}"
    finally:
        rogue.disconnect()
    # the counters reach the database (flushed at shutdown) and `xmppblog stats` shows them
    component.stop()
    out = subprocess.run([sys.executable, "-m", "xmppblog", "-c", str(component.config), "stats"],
                         capture_output=True, text=True, timeout=60)
    component.start()
    assert out.returncode == 0, out.stderr
    assert "no-subscription" in out.stdout and ROGUE in out.stdout and "author-local" in out.stdout


COMMANDS = "http://jabber.org/protocol/commands"


async def run_command(c, node, fields=None):
    """Execute an ad-hoc command on the service JID (two steps when it has a form)."""
    from ..support.clients import raw_iq
    r = await raw_iq(c, "blog.alpha.test", "set", f"<command xmlns='{COMMANDS}' node='{node}' action='execute'/>")
    cmd = r.xml.find(f"{{{COMMANDS}}}command")
    if fields is not None:
        x = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
        r = await raw_iq(c, "blog.alpha.test", "set",
                         f"<command xmlns='{COMMANDS}' node='{node}' sessionid='{cmd.get('sessionid')}'>"
                         f"<x xmlns='jabber:x:data' type='submit'>{x}</x></command>")
        cmd = r.xml.find(f"{{{COMMANDS}}}command")
    note = cmd.find(f"{{{COMMANDS}}}note")
    return cmd.get("status"), note.text if note is not None else ""


async def test_admin_commands_domain_block_at_run_time_and_reports(clients, component, net):
    from ..support.clients import raw_iq
    admin, walter, zed = await clients("admin"), await clients("walter"), await clients("zed@beta.test")
    items = await admin.plugin["xep_0030"].get_items(jid="blog.alpha.test", node=COMMANDS)
    assert "xmppblog#domain-block" in {i[1] for i in items["disco_items"]["items"]}
    err = await walter.error_of(raw_iq(walter, "blog.alpha.test", "set",
                                       f"<command xmlns='{COMMANDS}' node='xmppblog#domain-block' action='execute'/>"))
    assert err[:2] == ("auth", "forbidden"), "only admins"
    # block beta.test at run time: its users are refused at once
    status, note = await run_command(admin, "xmppblog#domain-block", {"domain": "Beta.Test", "action": "add"})
    assert status == "completed" and note == "Added beta.test to the block list."
    err = await zed.error_of(zed.pubsub.get_items("walter@blog.alpha.test", "urn:xmpp:microblog:0"))
    ADVERSARIAL.append(("request from a domain blocked at run time", 1, int(err[:2] != ("auth", "forbidden"))))
    assert err[:2] == ("auth", "forbidden")
    status, note = await run_command(admin, "xmppblog#domains")
    assert "block: beta.test" in note
    await run_command(admin, "xmppblog#domain-block", {"domain": "beta.test", "action": "remove"})
    await zed.pubsub.subscribe("walter@blog.alpha.test", "urn:xmpp:microblog:0")
    # reports: by chat, and XEP-0377 on a XEP-0191 block
    assert (await walter.say("report zed@beta.test keeps spamming")).startswith("Reported zed@beta.test")
    await raw_iq(walter, "blog.alpha.test", "set",
                 "<block xmlns='urn:xmpp:blocking'><item jid='spam@rogue.beta.test'>"
                 "<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'><text>ads</text></report>"
                 "</item></block>")
    assert "spam@rogue.beta.test" in await walter.say("blocked")
    status, note = await run_command(admin, "xmppblog#reports")
    assert "walter@alpha.test reported spam@rogue.beta.test (urn:xmpp:reporting:spam) ads" in note
    assert "walter@alpha.test reported zed@beta.test" in note
    status, note = await run_command(admin, "xmppblog#spamguard-stats")
    assert status == "completed" and "blocked-domain" in note


async def test_entries_from_an_xmppblog_peer_need_valid_signatures(clients, component, net):
    """A peer that says it is xmppblog must sign: unsigned and forged-signature entries are dropped."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from xmppblog.pubsub.signing import canonical

    key = Ed25519PrivateKey.generate()
    pub = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    rogue = Rogue(net["beta"].ip, xmppblog_keys=pub)
    started = asyncio.get_running_loop().create_future()
    rogue.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    rogue.connect()
    await asyncio.wait_for(started, 10)
    trent = await clients("trent")
    await greeted(trent)
    try:
        assert await trent.say(f"follow xmpp:{ROGUE}?;node=news") == f"Now following {ROGUE}"

        def signed(item_id: str, title: str, tamper: bool = False) -> str:
            entry = ET.fromstring(f"<entry xmlns='{ATOM}'><title>{title}</title>"
                                  f"<author><uri>xmpp:{ROGUE}</uri></author></entry>")
            sig = base64.b64encode(key.sign(canonical(entry))).decode()
            if tamper:
                entry.find(f"{{{ATOM}}}title").text = title + " (altered)"
            el = ET.SubElement(entry, "{urn:xmppblog:0}signature", {"key": "k1", "algorithm": "ed25519"})
            el.text = sig
            return (f"<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='news'>"
                    f"<item id='{item_id}'>{ET.tostring(entry, encoding='unicode')}</item></items></event>")

        rogue.push(ROGUE, event("news", "u1", "unsigned claim", ROGUE))
        rogue.push(ROGUE, signed("t1", "tampered claim", tamper=True))
        rogue.push(ROGUE, signed("ok1", "properly signed news"))
        ok = await trent.inbox.wait(lambda m: "properly signed news" in (m["body"] or ""))
        assert ok is not None
        component.wait_log("reason=missing-signature")
        component.wait_log("reason=bad-signature")
        timeline = await trent.say("timeline 10")
        seen = " ".join(m["body"] or "" for m in trent.inbox.items) + timeline
        ADVERSARIAL.append(("unsigned entry from an xmppblog peer", 1, int("unsigned claim" in seen)))
        ADVERSARIAL.append(("tampered signed entry", 1, int("tampered claim" in seen)))
        assert "unsigned claim" not in timeline and "tampered claim" not in timeline
        assert await trent.say(f"unfollow xmpp:{ROGUE}?;node=news") == f"You no longer follow {ROGUE}"
    finally:
        rogue.disconnect()


async def test_real_time_block_list(clients, component, net):
    """[spamguard] rtbl_services: entries (sha256 of JIDs or domains) refuse stanzas at once."""
    import hashlib

    from xmppblog.spamguard.rtbl import sha256_hex

    entry = hashlib.sha256(b"xena@beta.test").hexdigest()
    assert entry == sha256_hex("xena@beta.test")
    rogue = Rogue(net["beta"].ip, rtbl=(entry,))
    started = asyncio.get_running_loop().create_future()
    rogue.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    rogue.connect()
    await asyncio.wait_for(started, 10)
    try:
        component.stop()
        component.start()
        # wait in a thread: the rogue answers alpha's IQs on this test's event loop
        await asyncio.to_thread(component.wait_log, f"rtbl {ROGUE} rtbl: 1 entries")
        xena = await clients("xena@beta.test")
        err = await xena.error_of(xena.pubsub.get_items("walter@blog.alpha.test", "urn:xmpp:microblog:0"))
        ADVERSARIAL.append(("request from a JID on a real-time block list", 1, int(err[:2] != ("auth", "forbidden"))))
        assert err[:2] == ("auth", "forbidden")
        rogue.push(ROGUE, "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='rtbl'>"
                          f"<retract id='{entry}'/></items></event>")
        await asyncio.to_thread(component.wait_log, "rtbl update from rogue.beta.test rtbl: +0 -1")
        await xena.pubsub.get_items("walter@blog.alpha.test", "urn:xmpp:microblog:0")
    finally:
        rogue.disconnect()
