# SPDX-License-Identifier: AGPL-3.0-or-later
"""A tiny authoritative DNS server on loopback for the test servers.

The test servers listen on ports of their own (tests/support/ports.py) so that
the suite runs beside a Prosody or an ejabberd holding the default ones. Other
servers find a non-default s2s port the way they would in production: through
an `_xmpp-server._tcp` SRV record. Prosody's resolver (libunbound) forwards
every query here; names it does not know get NXDOMAIN, so no query leaves the
machine.
"""

from __future__ import annotations

import socket
import struct
import threading

A, SRV = 1, 33
CLASS_IN = 1
TTL = 60


def _name(labels: str) -> bytes:
    out = b""
    for label in labels.rstrip(".").split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def _question(packet: bytes) -> tuple[str, int, int, int]:
    """(name, type, class, offset after the question) of a query's first question."""
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        if n & 0xC0:  # no compression in a query's question
            raise ValueError("compressed question")
        labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack_from("!HH", packet, i + 1)
    return ".".join(labels).lower(), qtype, qclass, i + 5


class Zone:
    """A records for the given names and, for each, `_xmpp-server._tcp` and
    `_xmpp-client._tcp` SRV records pointing at that name's ports."""

    def __init__(self, addresses: dict[str, str], s2s_port: int, c2s_port: int) -> None:
        self.addresses = {k.lower(): v for k, v in addresses.items()}
        self.ports = {"_xmpp-server._tcp.": s2s_port, "_xmpp-client._tcp.": c2s_port}

    def answer(self, name: str, qtype: int) -> tuple[int, list[tuple[int, bytes]]]:
        """(rcode, [(type, rdata)])."""
        if name in self.addresses:
            if qtype == A:
                return 0, [(A, socket.inet_aton(self.addresses[name]))]
            return 0, []
        for prefix, port in self.ports.items():
            target = name.removeprefix(prefix)
            if target != name and target in self.addresses:
                if qtype == SRV:
                    return 0, [(SRV, struct.pack("!HHH", 0, 0, port) + _name(target))]
                return 0, []
        return 3, []  # NXDOMAIN


def respond(zone: Zone, packet: bytes) -> bytes | None:
    """The answer to one query packet, or None for what is not a query."""
    if len(packet) < 17:
        return None
    qid, flags = struct.unpack_from("!HH", packet)
    if flags & 0x8000:
        return None
    try:
        name, qtype, qclass, end = _question(packet)
    except (ValueError, IndexError, struct.error):
        return struct.pack("!HHHHHH", qid, 0x8001, 0, 0, 0, 0)  # FORMERR
    rcode, records = zone.answer(name, qtype) if qclass == CLASS_IN else (5, [])
    head = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode, 1, len(records), 0, 0)
    body = packet[12:end]
    for rtype, rdata in records:
        body += struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, TTL, len(rdata)) + rdata
    return head + body


class DnsServer:
    """Serves `zone` on 127.0.0.1:<ephemeral port> from a daemon thread."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)

    @property
    def address(self) -> str:
        """As libunbound's forward option takes it."""
        return f"127.0.0.1@{self.port}"

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = respond(self.zone, packet)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
