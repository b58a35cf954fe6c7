# SPDX-License-Identifier: AGPL-3.0-or-later
"""Baseline components for issue #7, run as their own processes so their CPU is measured alone.

    python -m bench.baselines floor|naive HOST PORT DOMAIN SECRET SUBSCRIBERS_FILE TEMPLATE_FILE
    python -m bench.baselines naive_store HOST PORT DOMAIN SECRET DATABASE

floor: writes pre-serialised notification bytes to every subscriber (the least any
       component can do); naive: builds one slixmpp Message object per subscriber.
Both fire when a client sends them a chat message "go N", and send the notification
in TEMPLATE_FILE (`<message type=…>children</message>`, the post number as @@N@@).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys

GO = re.compile(rb"<body>go (\d+)</body>")


def split(template: str) -> tuple[str, str]:
    """(type, children) of the template message."""
    m = re.match(r"<message type=['\"]([a-z]+)['\"]>(.*)</message>$", template, re.S)
    assert m is not None, "template must be <message type=…>…</message>"
    return m.group(1), m.group(2)


async def floor(host: str, port: int, domain: str, secret: str, subscribers: list[str], template: str) -> None:
    mtype, inner = split(template)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' "
                 f"to='{domain}'>".encode())
    head = await reader.read(4096)
    sid = re.search(rb"id=['\"]([^'\"]+)", head).group(1).decode()
    writer.write(f"<handshake>{hashlib.sha1((sid + secret).encode()).hexdigest()}</handshake>".encode())
    await reader.read(4096)
    print("ready", flush=True)
    buf = b""
    while chunk := await reader.read(65536):
        buf += chunk
        for m in GO.finditer(buf):
            body = inner.replace("@@N@@", m.group(1).decode())
            head_ = f"<message from='alice@{domain}' type='{mtype}' to='"
            writer.write("".join(f"{head_}{s}'>{body}</message>" for s in subscribers).encode())
        buf = buf[-64:]


async def naive(host: str, port: int, domain: str, secret: str, subscribers: list[str], template: str) -> None:
    import slixmpp
    from slixmpp.xmlstream import ET
    c = slixmpp.ComponentXMPP(domain, secret, host, port)
    c.enable_starttls = c.enable_direct_tls = False
    ready = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: ready.done() or ready.set_result(True))

    def on_message(msg):  # type: ignore[no-untyped-def]
        m = re.match(r"go (\d+)", msg["body"] or "")
        if not m:
            return
        xml = ET.fromstring(template.replace("@@N@@", m.group(1)))
        for s in subscribers:
            out = c.make_message(mto=s, mfrom=f"alice@{domain}", mtype=xml.get("type"))
            for child in xml:
                out.append(ET.fromstring(ET.tostring(child)))  # one new stanza object per subscriber
            out.send()

    c.add_event_handler("message", on_message)
    c.connect()
    await ready
    print("ready", flush=True)
    await asyncio.Event().wait()


async def naive_store(host: str, port: int, domain: str, secret: str, db: str) -> None:
    """W2's baseline: a slixmpp component that stores each published item and answers.

    One stanza object per request, one INSERT and one COMMIT per publish on the same
    database kind xmppblog uses (SQLite file via aiosqlite, or PostgreSQL via asyncpg).
    A subscribe is one INSERT; a publish to a node with subscribers then reads them (one
    SELECT) and sends each one `Message` object built for them (the naive fan-out).
    """
    import uuid

    import slixmpp
    from slixmpp.xmlstream import ET
    from slixmpp.xmlstream.handler import CoroutineCallback
    from slixmpp.xmlstream.matcher import MatchXPath

    ps = "http://jabber.org/protocol/pubsub"
    ddl = ("CREATE TABLE items (node TEXT, item_id TEXT, publisher TEXT, payload TEXT, PRIMARY KEY (node, item_id))",
           "CREATE TABLE subs (node TEXT, jid TEXT, PRIMARY KEY (node, jid))")
    if db.startswith("postgresql"):
        import asyncpg
        pool = await asyncpg.create_pool(db.replace("postgresql+asyncpg://", "postgresql://"), max_size=10)
        for statement in ddl:
            await pool.execute(statement)

        async def store(*row: str) -> None:
            await pool.execute("INSERT INTO items VALUES ($1, $2, $3, $4)", *row)

        async def subscribe(*row: str) -> None:
            await pool.execute("INSERT INTO subs VALUES ($1, $2) ON CONFLICT DO NOTHING", *row)

        async def subscribers(node: str) -> list[str]:
            return [r[0] for r in await pool.fetch("SELECT jid FROM subs WHERE node = $1", node)]
    else:
        import aiosqlite
        lite = await aiosqlite.connect(db)
        await lite.execute("PRAGMA journal_mode=WAL")
        await lite.execute("PRAGMA synchronous=NORMAL")
        for statement in ddl:
            await lite.execute(statement)

        async def store(*row: str) -> None:
            await lite.execute("INSERT INTO items VALUES (?, ?, ?, ?)", row)
            await lite.commit()

        async def subscribe(*row: str) -> None:
            await lite.execute("INSERT OR IGNORE INTO subs VALUES (?, ?)", row)
            await lite.commit()

        async def subscribers(node: str) -> list[str]:
            return [r[0] for r in await lite.execute_fetchall("SELECT jid FROM subs WHERE node = ?", (node,))]

    c = slixmpp.ComponentXMPP(domain, secret, host, port)
    c.enable_starttls = c.enable_direct_tls = False
    ready = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: ready.done() or ready.set_result(True))

    async def on_publish(iq):  # type: ignore[no-untyped-def]
        sub = iq.xml.find(f"{{{ps}}}pubsub/{{{ps}}}subscribe")
        if sub is not None:
            await subscribe(f"{iq['to'].bare}/{sub.get('node')}", sub.get("jid"))
            reply = iq.reply()
            reply.append(ET.fromstring(f"<pubsub xmlns='{ps}'><subscription node='{sub.get('node')}' "
                                       f"jid='{sub.get('jid')}' subscription='subscribed'/></pubsub>"))
            reply.send()
            return
        publish = iq.xml.find(f"{{{ps}}}pubsub/{{{ps}}}publish")
        item = publish.find(f"{{{ps}}}item")
        item_id = item.get("id") or str(uuid.uuid4())
        node = f"{iq['to'].bare}/{publish.get('node')}"
        payload = ET.tostring(item[0], encoding="unicode")
        await store(node, item_id, iq["from"].bare, payload)
        reply = iq.reply()
        reply.append(ET.fromstring(f"<pubsub xmlns='{ps}'><publish node='{publish.get('node')}'>"
                                   f"<item id='{item_id}'/></publish></pubsub>"))
        reply.send()
        for jid in await subscribers(node):
            out = c.make_message(mto=jid, mfrom=iq["to"], mtype="headline")
            out.append(ET.fromstring(f"<event xmlns='{ps}#event'><items node='{publish.get('node')}'>"
                                     f"<item id='{item_id}'>{payload}</item></items></event>"))
            out.send()

    c.register_handler(CoroutineCallback("publish", MatchXPath(f"{{jabber:component:accept}}iq/{{{ps}}}pubsub"),
                                         on_publish))
    c.connect()
    await ready
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    if sys.argv[1] == "naive_store":
        host, port, domain, secret, db = sys.argv[2:7]
        asyncio.run(naive_store(host, int(port), domain, secret, db))
        return
    kind, host, port, domain, secret, subs_file, template_file = sys.argv[1:8]
    subscribers = open(subs_file).read().split()
    template = open(template_file).read()
    run = floor if kind == "floor" else naive
    asyncio.run(run(host, int(port), domain, secret, subscribers, template))


if __name__ == "__main__":
    main()
