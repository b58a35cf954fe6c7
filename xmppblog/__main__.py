# SPDX-License-Identifier: AGPL-3.0-or-later
"""Command line: `xmppblog [-c PATH] run | migrate | check-config | stats | rotate-key | doctor`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from . import __version__
from .config import ConfigError, load, render

log = logging.getLogger("xmppblog")

EPILOG = """\
commands:
  run            connect to the host server as the component and serve until
                 SIGINT/SIGTERM (applies pending migrations first unless --no-migrate)
  migrate        apply database migrations and exit
  check-config   validate the configuration and print the effective settings
  stats          print spamguard drops per reason and domain, the outbox backlog,
                 the subscriptions held at other servers and what each other server
                 received (delivered, pending, retrying, failed)
  export USER    a user's posts and comments as an Atom feed (USER: local part or
                 bare JID) on stdout, or into a file with -o FILE
  delete-user USER
                 delete a user's account: posts retracted wherever they were sent,
                 followers told, follows ended (safe while `run` is running: it sends
                 the queued notifications)
  rotate-key     make a new Ed25519 key to sign posts with; running `run` processes
                 publish it within 30 s and sign with it within 90 s, no restart
                 (older keys stay published, so older posts still verify)
  doctor         check the installation from the outside in (config, database, host
                 server, secret, disco routing, HTTP, XEP-0033, DNS and TLS for
                 federation); one line per check; exit status 0 only if none failed

The config path may also come from XMPPBLOG_CONFIG; any key can be overridden
with XMPPBLOG_<SECTION>_<KEY> (e.g. XMPPBLOG_COMPONENT_SECRET).
Example config: conf/xmppblog.example.toml
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xmppblog", description="Federated XMPP microblogging server (XEP-0114 component).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=os.environ.get("XMPPBLOG_CONFIG"),
                   help="path to the TOML config file (default: $XMPPBLOG_CONFIG)")
    p.add_argument("--version", action="version", version=f"xmppblog {__version__}")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="override [log] level")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the component")
    run.add_argument("--no-migrate", action="store_true",
                     help="do not apply pending migrations (for deployments that migrate separately)")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("check-config", help="validate and print the effective config")
    sub.add_parser("stats", help="print what spamguard dropped, the outbox backlog and remote subscriptions")
    export = sub.add_parser("export", help="a user's posts and comments as an Atom feed")
    export.add_argument("user", metavar="USER", help="local part or bare JID of a user of this server")
    export.add_argument("-o", "--output", metavar="FILE", help="write the feed to FILE instead of stdout")
    delete_user = sub.add_parser("delete-user", help="delete a user's account and tell everyone it reached")
    delete_user.add_argument("user", metavar="USER", help="local part or bare JID of a user of this server")
    sub.add_parser("rotate-key", help="make a new signing key (running processes sign with it within 90 s; "
                                      "old ones stay published)")
    doctor = sub.add_parser("doctor", help="check the installation and say how to fix what is wrong")
    doctor.add_argument("--json", action="store_true", help="print one JSON object: each check's name, "
                                                             "status (ok, warn, fail, skip) and message")
    return p


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # slixmpp logs every stanza at DEBUG and connection chatter at INFO.
    if level.lower() != "debug":
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    # aiosqlite logs every cursor call at DEBUG: never useful to an admin.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


async def _run(cfg, migrate_first: bool) -> int:  # type: ignore[no-untyped-def]
    from .app import App
    app = App(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, app.request_stop)
    await app.run(migrate_first=migrate_first)
    return 0


async def _migrate(cfg) -> int:  # type: ignore[no-untyped-def]
    from .storage import migrate
    await migrate.upgrade(cfg.database.url)
    rev = await migrate.current_revision(cfg.database.url)
    print(f"database at revision {rev}")
    return 0


async def _stats(cfg) -> int:  # type: ignore[no-untyped-def]
    from .cli_accounts import delivery_lines
    from .storage import migrate
    from .storage.engine import create_engine, sessionmaker
    from .storage.repos import uow_factory
    if await migrate.current_revision(cfg.database.url) is None:
        print("the database is empty: run `xmppblog migrate` or `xmppblog run` first")
        return 1
    engine = create_engine(cfg.database.url)
    try:
        async with uow_factory(sessionmaker(engine))() as uow:
            drops = await uow.stats.drops()
            pending = await uow.outbox.pending_count()
            remote = await uow.remote.all()
            deliveries = await delivery_lines(uow, cfg)
            held = {service: (n, latest) for service, n, latest in await _firehose_posts(uow)}
    finally:
        await engine.dispose()
    print(f"outbox: {pending} notification(s) waiting")
    print(f"remote subscriptions held: {len(remote)}")
    for sub in remote:
        print(f"  {sub.service} {sub.node} [{sub.state.value}]")
    print("\n".join(deliveries))
    if cfg.aggregator.sources:
        from .protocol import NS_FIREHOSE
        states = {sub.service: sub.state.value for sub in remote if sub.node == NS_FIREHOSE}
        print(f"aggregator sources: {len(cfg.aggregator.sources)}")
        for source in cfg.aggregator.sources:
            n, latest = held.get(source, (0, None))
            when = f", latest received {latest:%Y-%m-%d %H:%M:%S}" if latest else ""
            print(f"  {source} [{states.get(source, 'not subscribed')}] {n} post(s) held{when}")
    total = sum(n for _, _, n, _ in drops)
    print(f"spamguard: {total} refused stanza(s)")
    if drops:
        print(f"  {'reason':<22} {'domain':<32} {'count':>8}  last")
        for reason, domain, n, last in drops:
            print(f"  {reason:<22} {domain:<32} {n:>8}  {last:%Y-%m-%d %H:%M:%S}")
    return 0


async def _firehose_posts(uow) -> list[tuple[str, int, object]]:  # type: ignore[no-untyped-def]
    """(source, posts held, latest received) of each followed firehose (an aggregator's sources)."""
    from .protocol import NS_FIREHOSE
    per: dict[str, tuple[int, object]] = {}
    for service, _, n, latest in await uow.items.authors_on(NS_FIREHOSE):
        count, newest = per.get(service, (0, latest))
        per[service] = (count + n, max(newest, latest))  # type: ignore[type-var]
    return [(s, n, latest) for s, (n, latest) in per.items()]


async def _rotate_key(cfg) -> int:  # type: ignore[no-untyped-def]
    from .app import SystemClock
    from .pubsub.signing import KEY_PUBLISHED_SECONDS, KEYS_CACHE_SECONDS, Signer
    from .storage import migrate
    from .storage.engine import create_engine, sessionmaker
    from .storage.repos import uow_factory

    await migrate.upgrade(cfg.database.url)
    engine = create_engine(cfg.database.url)
    try:
        key_id = await Signer(uow_factory(sessionmaker(engine)), SystemClock()).rotate()
    finally:
        await engine.dispose()
    print(f"new signing key {key_id}; running xmppblog processes publish it within {KEYS_CACHE_SECONDS:.0f} s "
          f"and sign with it within {KEY_PUBLISHED_SECONDS + KEYS_CACHE_SECONDS:.0f} s, no restart needed "
          "(older keys stay published)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.command:
        _parser().print_help()
        return 2
    if not args.config:
        print("xmppblog: no config file: pass -c PATH or set XMPPBLOG_CONFIG "
              "(see conf/xmppblog.example.toml)", file=sys.stderr)
        return 2
    if args.command == "doctor":  # reports a bad config as one of its checks
        from .doctor import main as doctor
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        return doctor(args.config, args.json)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"xmppblog: config error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level or cfg.log.level)
    if args.command == "check-config":
        print(f"# effective configuration from {args.config}")
        print(render(cfg))
        return 0
    try:
        if args.command == "migrate":
            return asyncio.run(_migrate(cfg))
        if args.command == "stats":
            return asyncio.run(_stats(cfg))
        if args.command in ("export", "delete-user"):
            from . import cli_accounts
            if args.command == "export":
                return asyncio.run(cli_accounts.export(cfg, args.user, args.output))
            return asyncio.run(cli_accounts.delete_user(cfg, args.user))
        if args.command == "rotate-key":
            return asyncio.run(_rotate_key(cfg))
        return asyncio.run(_run(cfg, not args.no_migrate))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for the admin; the traceback at debug
        log.debug("fatal", exc_info=True)
        print(f"xmppblog: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
