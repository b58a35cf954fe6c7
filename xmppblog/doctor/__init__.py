# SPDX-License-Identifier: AGPL-3.0-or-later
"""`xmppblog doctor`: check an installation from the outside in.

Config, database (reachable, migrated), the host server (reachable, handshake
accepted), a disco round trip through the host to the service JID and a blog
JID, the HTTP listener, the host's XEP-0033 service, and what other servers
need to reach the component domain (DNS, TLS certificate). One plain line per
check saying what is wrong and how to fix it.

It works whether or not xmppblog is running. A host accepts one connection per
component domain (Prosody refuses a second one; ejabberd would share traffic
with it), so when the component answers on its HTTP listener the doctor checks
through it (/healthz?deep=1) instead of connecting itself. Checks that only
matter for federation are warnings on a setup no other server can reach
(special-use names such as *.localhost, or names resolving to loopback).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

from ..config import Config, ConfigError, load, safe_url
from ..core.addressing import Addressing
from ..xmpp.multicast import discover
from .component import ComponentProbe, ProbeError
from .federation import check_tls, find_endpoints, special_use
from .report import Report

#: the longest a group of network checks may take
DEADLINE_SECONDS = 60.0
#: the blog JID the round trip asks about (any local part is a blog JID the component answers for)
PROBE_USER = "xmppblog-doctor"

FIX_SECRET = ("the host refused the handshake: [component] secret must equal the host's secret for {jid} "
              "(Prosody: component_secret in its Component \"{jid}\" section; ejabberd: the password under "
              "ejabberd_service hosts)")
FIX_UNKNOWN = ("the host does not serve {jid} as a component: declare it (Prosody: Component \"{jid}\" with "
               "component_secret; ejabberd: hosts: under the ejabberd_service listener) and reload the host")


async def examine(config_path: str | None, env: dict[str, str] | None = None) -> Report:
    """Run every check; the report says what passed, what failed and how to fix it."""
    report = Report()
    try:
        cfg = load(config_path, env)
    except ConfigError as exc:
        report.fail("config", f"{exc}; see conf/xmppblog.example.toml")
        return report
    c = cfg.component
    report.ok("config", f"{config_path or 'environment'}: valid; component {c.jid} for users of {c.users_domain}, "
                        f"host {c.host}:{c.port}, database {safe_url(cfg.database.url)}")
    await _database(cfg, report, f"xmppblog -c {config_path}" if config_path else "xmppblog")
    running = await _running(cfg, report)
    if running is not None:
        _through_running(cfg, running, report)
    else:
        await _within(_own_connection(cfg, report), "host", report)
    await _within(_federation(cfg, report), "dns", report)
    return report


async def _within(checks: Coroutine[Any, Any, None], name: str, report: Report) -> None:
    """Each read has its own timeout; this bounds a group of checks whatever the peer trickles."""
    try:
        await asyncio.wait_for(checks, DEADLINE_SECONDS)
    except TimeoutError:
        report.fail(name, f"the checks took longer than {DEADLINE_SECONDS:.0f} s: the peer answers, but too slowly "
                          "to be a working server")


# ------------------------------------------------------------------ database

async def _database(cfg: Config, report: Report, cli: str) -> None:
    """`cli`: the command line the admin runs, named in the fixes."""
    from ..storage import migrate  # Alembic is slow to import: only when the config is good

    url = cfg.database.url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        report.fail("database", f"{parsed.database} does not exist yet: run `{cli} migrate` "
                                "(or `run`, which migrates first)")
        return
    try:
        current = await asyncio.wait_for(migrate.current_revision(url), 10)
    except TimeoutError:
        report.fail("database", f"{safe_url(url)} did not answer within 10 s: is the database server up?")
        return
    except Exception as exc:  # the driver's own words name the cause
        report.fail("database", f"cannot open {safe_url(url)}: {type(exc).__name__}: {exc}; "
                                "check [database] url and that the database server is running")
        return
    head = migrate.head_revision(url)
    if current is None:
        report.fail("database", f"reachable but empty: run `{cli} migrate` (or `run`, which migrates first)")
    elif current != head:
        known = current in migrate.known_revisions(url)
        report.fail("database", f"at revision {current}, this xmppblog needs {head}: "
                    + (f"run `{cli} migrate`" if known
                       else "the database is from a newer xmppblog; upgrade xmppblog"))
    else:
        report.ok("database", f"reachable, at the latest revision ({head})")


# ------------------------------------------------------------------ a running component

async def _running(cfg: Config, report: Report) -> dict[str, Any] | None:
    """The running component's /healthz?deep=1 answer, or None when none answers."""
    listen = cfg.http.listen
    if not listen:
        report.skip("http", "disabled ([http] listen = \"\"): the doctor cannot see a running xmppblog, "
                            "so it connects to the host itself")
        return None
    host, _, port = listen.rpartition(":")
    url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else ('::1' if host == '::' else host)}:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http, \
                http.get(f"{url}/healthz", params={"deep": "1"}) as r:
            body = await r.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        _http_not_running(listen, report)
        return None
    try:
        health = json.loads(body)
    except ValueError:
        health = None
    if not isinstance(health, dict) or health.get("service") != cfg.component.jid:
        report.fail("http", f"{listen} is answered by another program, not xmppblog for {cfg.component.jid}: "
                            "choose a free address for [http] listen")
        return None
    report.ok("http", f"http://{listen}/ answers (pages, feeds, /api, /metrics, /healthz)")
    return health


def _http_not_running(listen: str, report: Report) -> None:
    host, _, port = listen.rpartition(":")
    try:
        socket.create_server((host.strip("[]") or "0.0.0.0", int(port))).close()  # only: is it free?
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            report.fail("http", f"{listen} is taken by another program that does not answer as xmppblog: "
                                "choose another [http] listen")
        else:
            report.fail("http", f"cannot listen on {listen}: {exc.strerror}; check [http] listen")
        return
    report.warn("http", f"nothing answers on {listen}: xmppblog is not running (the address is free for it)")


def _through_running(cfg: Config, health: dict[str, Any], report: Report) -> None:
    c = cfg.component
    if health.get("database") != "ok":
        report.fail("database (running)", f"the running xmppblog says: {health.get('database')}")
    if health.get("host") != "connected":
        report.fail("host", f"the running xmppblog is not connected to {c.host}:{c.port}: {health.get('host')}")
        return
    report.ok("host", f"the running xmppblog is connected to {c.host}:{c.port}")
    report.ok("handshake", "accepted (the running xmppblog holds the component connection)")
    if "disco_refused" in health:
        report.warn("disco", f"not checked: {health['disco_refused']}; run doctor on a machine in "
                             "[http] operators_from")
        _multicast(cfg, health.get("multicast"), report)
        return
    disco = health.get("disco") or {}
    broken = {jid: what for jid, what in disco.items() if not str(what).startswith("pubsub/")}
    if len(disco) < 2 or broken:
        report.fail("disco", "a disco round trip through the host failed: "
                    + ("; ".join(f"{j}: {w}" for j, w in broken.items()) or "no answer")
                    + ": check that the host routes the component domain and its subaddresses to it")
    else:
        report.ok("disco", "through the host: " + "; ".join(f"{j} is {w}" for j, w in disco.items()))
    _multicast(cfg, health.get("multicast"), report)


def _multicast(cfg: Config, service: str | None, report: Report) -> None:
    if not cfg.component.multicast:
        report.skip("multicast", "off ([component] multicast = false): one stanza per local follower")
    elif service:
        report.ok("multicast", f"{cfg.component.users_domain} offers XEP-0033 at {service}: local fan-out "
                               "goes through it")
    else:
        report.warn("multicast", f"{cfg.component.users_domain} offers no XEP-0033 service: one stanza per local "
                                 "follower (fine for small servers; ejabberd: mod_multicast; Prosody has none "
                                 "built in)")


# ------------------------------------------------------------------ the doctor's own connection

async def _own_connection(cfg: Config, report: Report) -> None:
    c = cfg.component
    probe = ComponentProbe(c.jid, c.secret)
    try:
        await probe.connect(c.host, c.port)
    except ProbeError as exc:
        _connection_failed(cfg, exc, report)
        return
    try:
        report.ok("host", f"{c.host}:{c.port} answers as an XMPP component listener")
        report.ok("handshake", f"accepted for {c.jid} (the secret is right)")
        blog = Addressing(c.jid, c.users_domain).blog_of(f"{PROBE_USER}@{c.users_domain}")
        answers = {jid: await probe.disco_info(jid) for jid in (c.jid, blog) if jid}
        lost = [jid for jid, a in answers.items() if a.query is None]
        if lost:
            report.fail("disco", "the host did not route " + ", ".join(
                f"{j} ({answers[j].error})" for j in lost) + f" back to the component: check that {c.jid} "
                f"and its subaddresses (user@{c.jid}) are routed to it")
        else:
            report.ok("disco", f"the host routes {' and '.join(answers)} to the component "
                               "(answered by the doctor: xmppblog is not running)")
        service = None
        if c.multicast:
            found = await discover(probe.ask_query, c.users_domain)
            service = found.service if found else None
        _multicast(cfg, service, report)
    except ProbeError as exc:
        report.fail("disco", f"the connection to the host failed during the checks: {exc}")
    finally:
        await probe.close()


def _connection_failed(cfg: Config, exc: ProbeError, report: Report) -> None:
    c = cfg.component
    if exc.condition is None:
        report.fail("host", f"{exc}: is Prosody or ejabberd running, and does it accept components on "
                            f"{c.host}:{c.port}? (Prosody: component_ports and component_interfaces; "
                            "ejabberd: a listen entry with module ejabberd_service); check [component] host, port")
        return
    report.ok("host", f"{c.host}:{c.port} answers as an XMPP component listener")
    if exc.condition == "not-authorized":
        report.fail("handshake", FIX_SECRET.format(jid=c.jid))
    elif exc.condition in ("host-unknown", "improper-addressing", "host-gone"):
        report.fail("handshake", FIX_UNKNOWN.format(jid=c.jid))
    elif exc.condition == "conflict":
        report.warn("handshake", f"another connection holds {c.jid} (an xmppblog running without an HTTP "
                                 "listener?): the secret cannot be checked while it is up; set [http] listen "
                                 "so the doctor can check through it")
    else:
        report.fail("handshake", f"the host ended the stream: {exc}")


# ------------------------------------------------------------------ federation

async def _federation(cfg: Config, report: Report) -> None:
    domain = cfg.component.jid
    endpoints = await find_endpoints(domain)
    local = special_use(domain) or (endpoints.problem is not None and "loopback" in endpoints.problem)
    problem = report.warn if local else report.fail
    why_warn = " (a local setup: only federation needs it)" if local else ""
    if endpoints.problem is not None:
        problem("dns", endpoints.problem + why_warn)
        report.skip("tls", f"not checked: other servers cannot find {domain}")
        return
    host, port = endpoints.targets[0]
    report.ok("dns", (f"_xmpp-server._tcp.{domain} → {host}:{port}" if endpoints.via_srv
                      else f"no SRV record; {domain} resolves, so other servers try port {port}")
              + f" ({', '.join(endpoints.addresses)})")
    ok, what = await check_tls(domain, host, port)
    (report.ok if ok else problem)("tls", what + ("" if ok else why_warn))


def main(config_path: str | None, as_json: bool) -> int:
    """Run the doctor and print its report; the exit status is 0 only when nothing failed."""
    report = asyncio.run(examine(config_path))
    print(report.json() if as_json else report.text())
    return report.exit_status()


__all__ = ["examine", "main", "Report", "ConfigError"]
