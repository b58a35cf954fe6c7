# SPDX-License-Identifier: AGPL-3.0-or-later
"""What other servers need to reach the component domain: DNS, and TLS on s2s.

Another server delivering to `blog.example.org` looks up the SRV record
`_xmpp-server._tcp.blog.example.org` (else the domain's own A/AAAA records and
port 5269), connects there, and, as nearly all servers require today, starts
TLS and checks that the certificate names `blog.example.org` (RFC 6120 §13.7,
RFC 7590). These checks do the same from here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import dns.asyncresolver
import dns.exception
import dns.resolver

NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
DEFAULT_S2S_PORT = 5269
#: names that never federate (RFC 6761, RFC 8375 and the common private ones)
SPECIAL_USE = ("localhost", "test", "local", "example", "invalid", "internal", "lan", "home.arpa")


def special_use(domain: str) -> bool:
    """True for a domain no other server on the Internet can reach by name."""
    d = domain.lower().rstrip(".")
    return any(d == s or d.endswith("." + s) for s in SPECIAL_USE)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where other servers would connect for a domain, and how that was found."""

    targets: list[tuple[str, int]]   # (host, port), best first
    addresses: list[str]             # of the first target
    via_srv: bool
    problem: str | None              # why other servers cannot find it, if they cannot


async def _addresses(resolver: dns.asyncresolver.Resolver, name: str) -> list[str]:
    found: list[str] = []
    for rtype in ("A", "AAAA"):
        try:
            found += [r.to_text() for r in await resolver.resolve(name, rtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
    return found


async def find_endpoints(domain: str, lifetime: float = 4.0, nameserver: tuple[str, int] | None = None) -> Endpoints:
    """Look `domain` up as another server would (RFC 6120 §3.2), through this machine's
    resolver or `nameserver` (address, port)."""
    try:
        resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    except dns.resolver.NoResolverConfiguration:
        return Endpoints([], [], False, "this machine has no DNS resolver configured (/etc/resolv.conf)")
    if nameserver is not None:
        resolver.nameservers, resolver.port = [nameserver[0]], nameserver[1]
    resolver.lifetime = lifetime
    srv = f"_xmpp-server._tcp.{domain}"
    try:
        records = sorted(await resolver.resolve(srv, "SRV"), key=lambda r: (r.priority, -r.weight))
        targets = [(r.target.to_text().rstrip("."), r.port) for r in records if r.target.to_text() != "."]
        via_srv = True
        if not targets:
            return Endpoints([], [], True, f"{srv} says the domain offers no XMPP service ('.' target)")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        targets, via_srv = [(domain, DEFAULT_S2S_PORT)], False
    except dns.exception.Timeout:
        return Endpoints([], [], False, f"DNS did not answer for {srv} within {lifetime:.0f} s")
    try:
        addresses = await _addresses(resolver, targets[0][0])
    except dns.exception.Timeout:
        return Endpoints(targets, [], via_srv, f"DNS did not answer for {targets[0][0]} within {lifetime:.0f} s")
    if not addresses:
        if via_srv:
            return Endpoints(targets, [], True, f"{srv} points to {targets[0][0]}, which has no A/AAAA record")
        return Endpoints([], [], False, f"no SRV record {srv} and no A/AAAA record for {domain}: add "
                         f"`{srv}. 3600 IN SRV 0 5 5269 <your XMPP server's name>.`")
    if all(ipaddress.ip_address(a).is_loopback for a in addresses):
        return Endpoints(targets, addresses, via_srv, f"{targets[0][0]} resolves only to loopback "
                         f"({', '.join(addresses)}): other servers cannot reach it")
    return Endpoints(targets, addresses, via_srv, None)


#: a stream header and its features are a few KiB: more is not a server to keep reading
MAX_BYTES = 256 * 1024


async def _read_until(reader: asyncio.StreamReader, parser: ET.XMLPullParser, tag: str,
                      timeout: float) -> ET.Element:
    """Read the stream until a top-level element `tag` is complete (the stream header opens it)."""
    depth = received = 0
    while True:
        for event, element in parser.read_events():
            depth += 1 if event == "start" else -1
            if event == "end" and depth == 1:
                if element.tag == tag:
                    return element
                if element.tag == f"{{{NS_STREAM}}}error":
                    raise ConnectionError("the server sent a stream error: "
                                          + ", ".join(c.tag.split("}")[-1] for c in element))
        data = await asyncio.wait_for(reader.read(65536), timeout)
        if not data:
            raise ConnectionError("the server closed the connection")
        received += len(data)
        if received > MAX_BYTES:
            raise ConnectionError(f"the server sent more than {MAX_BYTES // 1024} KiB before TLS")
        parser.feed(data)


async def check_tls(domain: str, host: str, port: int, timeout: float = 5.0) -> tuple[bool, str]:
    """(True, what was found) when `host:port` offers STARTTLS on s2s with a certificate
    valid for `domain`; (False, what is wrong) otherwise."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return False, f"cannot reach {host}:{port} for s2s: {exc or 'timed out'}"
    try:
        writer.write(f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='{NS_STREAM}' "
                     f"to={quoteattr(domain)} version='1.0'>".encode())
        parser = ET.XMLPullParser(events=("start", "end"))
        features = await _read_until(reader, parser, f"{{{NS_STREAM}}}features", timeout)
        if features.find(f"{{{NS_TLS}}}starttls") is None:
            return False, (f"{host}:{port} offers no TLS for {domain}: most servers refuse s2s without it; "
                           "give the host server a certificate for the component domain")
        writer.write(f"<starttls xmlns='{NS_TLS}'/>".encode())
        await _read_until(reader, parser, f"{{{NS_TLS}}}proceed", timeout)
        context = ssl.create_default_context()
        try:
            await asyncio.wait_for(writer.start_tls(context, server_hostname=domain), timeout)
        except ssl.SSLCertVerificationError as exc:
            return False, (f"the certificate {host}:{port} presents is not valid for {domain}: "
                           f"{exc.verify_message}; it must name {domain} (Prosody: a certificate for the "
                           "Component host, `prosodyctl cert import`; ejabberd: certfiles)")
        cert = writer.get_extra_info("peercert") or {}
        return True, (f"{host}:{port} offers TLS with a certificate valid for {domain}"
                      + (f" until {cert['notAfter']}" if "notAfter" in cert else ""))
    except (OSError, TimeoutError, ConnectionError, ET.ParseError, ssl.SSLError) as exc:
        return False, f"s2s with {host}:{port} failed: {exc or type(exc).__name__}"
    finally:
        writer.close()
