# SPDX-License-Identifier: AGPL-3.0-or-later
"""Baseline components for issue #7, run as their own processes so their CPU is measured alone.

    python -m bench.baselines floor|naive HOST PORT DOMAIN SECRET SUBSCRIBERS_FILE

floor: writes pre-serialised notification bytes to every subscriber (the least any
       component can do); naive: builds one slixmpp Message object per subscriber.
Both fire when a client sends them a chat message "go N".
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys

ENTRY = ("<entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{pad}</title>"
         "<id>tag:bench,{n}</id><published>2026-11-24T00:00:00Z</published>"
         "<author><name>alice</name><uri>xmpp:alice@alpha.test</uri></author></entry>")
GO = re.compile(rb"<body>go (\d+)</body>")


def event(n: int) -> str:
    return ("<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:microblog:0'>"
            f"<item id='{n}'>" + ENTRY.format(n=n, pad="x" * 400) + "</item></items></event>")


async def floor(host: str, port: int, domain: str, secret: str, subscribers: list[str]) -> None:
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
            body = event(int(m.group(1)))
            head_ = f"<message from='alice@{domain}' type='headline' to='"
            writer.write("".join(f"{head_}{s}'>{body}</message>" for s in subscribers).encode())
        buf = buf[-64:]


async def naive(host: str, port: int, domain: str, secret: str, subscribers: list[str]) -> None:
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
        payload = event(int(m.group(1)))
        for s in subscribers:
            out = c.make_message(mto=s, mfrom=f"alice@{domain}", mtype="headline")
            out.append(ET.fromstring(payload))
            out.send()

    c.add_event_handler("message", on_message)
    c.connect()
    await ready
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    kind, host, port, domain, secret, subs_file = sys.argv[1:7]
    subscribers = open(subs_file).read().split()
    run = floor if kind == "floor" else naive
    asyncio.run(run(host, int(port), domain, secret, subscribers))


if __name__ == "__main__":
    main()
