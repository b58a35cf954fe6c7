# SPDX-License-Identifier: AGPL-3.0-or-later
"""Configuration: frozen dataclasses read from TOML plus XMPPBLOG_* environment variables.

Unknown keys, missing required keys and wrong types stop start-up with one
line naming the key (`ConfigError`). An environment variable
`XMPPBLOG_<SECTION>_<KEY>` (e.g. `XMPPBLOG_COMPONENT_SECRET`) overrides the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from .core.errors import InvalidJid
from .core.jid import parse

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A configuration problem, described in one line for the admin."""


@dataclass(frozen=True)
class ComponentConfig:
    jid: str
    secret: str
    host: str = "127.0.0.1"
    port: int = 5347
    users_domain: str = ""
    admins: tuple[str, ...] = ()
    reconnect_max_delay: float = 60.0
    #: hand local fan-out to the host's XEP-0033 multicast service when it offers one
    multicast: bool = True
    #: component connections this process opens (ejabberd `domain_balancing`: each may hold a slot)
    connections: int = 1


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:////var/lib/xmppblog/xmppblog.db"
    sqlite_synchronous: str = "NORMAL"


@dataclass(frozen=True)
class LimitsConfig:
    max_payload_bytes: int = 65536
    max_items_per_node: int = 10000
    max_page_items: int = 50
    max_stanza_bytes: int = 400 * 1024


@dataclass(frozen=True)
class FederationConfig:
    retry_for_seconds: int = 86400
    max_permanent_failures: int = 3
    keep_sent_seconds: int = 600
    first_retry_seconds: float = 30.0


@dataclass(frozen=True)
class SpamguardConfig:
    """Limits on what other servers and users may send (0 disables a limit)."""

    local_publishes_per_minute: int = 30
    remote_publishes_per_minute: int = 10
    remote_domain_publishes_per_minute: int = 60
    remote_events_per_minute: int = 120
    remote_domain_events_per_minute: int = 600
    subscribes_per_minute: int = 20
    owner_changes_per_minute: int = 20
    reports_per_minute: int = 10
    searches_per_minute: int = 30
    im_commands_per_minute: int = 30
    max_items_per_event: int = 50
    max_payload_depth: int = 32
    blocked_domains: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    rtbl_services: tuple[str, ...] = ()  # "service JID, node" pairs
    over_limit: str = "policy-violation"


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:8277"   # "" disables; not 5280/5281, which Prosody's HTTP server holds
    base_url: str = ""               # public URL when behind a reverse proxy; default http://<listen>
    #: who may read /metrics and /healthz?deep=1 (addresses or networks), never through a proxy
    operators_from: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class ClusterConfig:
    """Many `run` processes, on one or more machines, serving one component domain
    (PostgreSQL only; the host must be ejabberd with `domain_balancing`, docs/scale-out.md)."""

    enabled: bool = False
    #: this worker's name in the cluster ("" = hostname-pid-random); unique among live workers
    worker_id: str = ""
    #: how often a worker says it is alive and rebalances its share of the work
    heartbeat_seconds: float = 2.0
    #: a worker silent this long is taken for dead: its share of the outbox moves on
    lease_seconds: float = 10.0


@dataclass(frozen=True)
class FirehoseConfig:
    """The network-wide view, with consent (core/discovery.py, core/firehose.py)."""

    #: whether the public posts of users who never chose (`discoverable on|off`) may be taken
    #: into other servers' indexes
    default_discoverable: bool = False
    #: the firehose node keeps this many posts (consumers backfill from it; keep a day's worth)
    max_items: int = 100_000


@dataclass(frozen=True)
class AggregatorConfig:
    """Following other xmppblog servers' firehoses, for a network-wide view (issue #17)."""

    #: service JIDs of xmppblog servers whose firehose this server follows
    sources: tuple[str, ...] = ()
    #: service JIDs (or their domains) never followed, even if listed or met
    blocked_sources: tuple[str, ...] = ()
    #: posts kept per source (the oldest go first)
    max_items: int = 100_000


@dataclass(frozen=True)
class Config:
    component: ComponentConfig
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    spamguard: SpamguardConfig = field(default_factory=SpamguardConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    firehose: FirehoseConfig = field(default_factory=FirehoseConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)


SECTIONS: dict[str, type] = {
    "component": ComponentConfig, "database": DatabaseConfig,
    "limits": LimitsConfig, "federation": FederationConfig, "spamguard": SpamguardConfig,
    "http": HttpConfig, "log": LogConfig, "cluster": ClusterConfig, "firehose": FirehoseConfig,
    "aggregator": AggregatorConfig,
}
REQUIRED = {"component": ("jid", "secret")}


def _coerce(where: str, typ: Any, value: Any, from_env: bool) -> Any:
    origin = typing.get_origin(typ)
    if origin is tuple:
        if from_env:
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if typ is bool:
        if from_env and str(value).lower() in ("1", "true", "yes", "0", "false", "no"):
            return str(value).lower() in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if typ is int:
        if from_env:
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if typ is float:
        if from_env:
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _section(name: str, cls: type, raw: dict[str, Any], env: dict[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"[{name}] {key}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in fields(cls):
        env_key = f"XMPPBLOG_{name.upper()}_{f.name.upper()}"
        if env_key in env:
            values[f.name] = _coerce(env_key, hints[f.name], env[env_key], True)
        elif f.name in raw:
            values[f.name] = _coerce(f"[{name}] {f.name}", hints[f.name], raw[f.name], False)
        elif f.name in REQUIRED.get(name, ()):
            raise ConfigError(f"[{name}] {f.name}: required key is missing")
    return cls(**values)


def _validate(cfg: Config) -> Config:
    c = cfg.component
    try:
        jid = parse(c.jid)
    except InvalidJid as exc:
        raise ConfigError(f"[component] jid: {exc}") from None
    if jid.local or jid.resource or "." not in jid.domain:
        raise ConfigError(f"[component] jid: must be a domain such as blog.example.org, got {c.jid!r}")
    users_domain = c.users_domain or jid.domain.split(".", 1)[1]
    try:
        users_domain = parse(users_domain).domain
        admins = tuple(parse(a).bare for a in c.admins)
    except InvalidJid as exc:
        raise ConfigError(f"[component] users_domain/admins: {exc}") from None
    if not c.secret:
        raise ConfigError("[component] secret: must not be empty")
    if not 0 < c.port < 65536:
        raise ConfigError(f"[component] port: must be 1..65535, got {c.port}")
    if cfg.log.level.lower() not in LOG_LEVELS:
        raise ConfigError(f"[log] level: must be one of {', '.join(LOG_LEVELS)}")
    if cfg.database.sqlite_synchronous.upper() not in ("NORMAL", "FULL"):
        raise ConfigError("[database] sqlite_synchronous: must be NORMAL or FULL")
    if not cfg.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError("[database] url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    lim = cfg.limits
    for name in ("max_payload_bytes", "max_items_per_node", "max_page_items", "max_stanza_bytes"):
        if getattr(lim, name) < 1:
            raise ConfigError(f"[limits] {name}: must be positive")
    if lim.max_stanza_bytes > 500 * 1024:
        raise ConfigError("[limits] max_stanza_bytes: must stay below the host server's 512 KiB limit")
    fed = cfg.federation
    for name in ("retry_for_seconds", "max_permanent_failures", "keep_sent_seconds", "first_retry_seconds"):
        if getattr(fed, name) < 1:
            raise ConfigError(f"[federation] {name}: must be positive")
    sg = cfg.spamguard
    for name in ("local_publishes_per_minute", "remote_publishes_per_minute", "remote_domain_publishes_per_minute",
                 "remote_events_per_minute", "remote_domain_events_per_minute", "subscribes_per_minute",
                 "owner_changes_per_minute", "reports_per_minute", "searches_per_minute", "im_commands_per_minute",
                 "max_items_per_event"):
        if getattr(sg, name) < 0:
            raise ConfigError(f"[spamguard] {name}: must be 0 (off) or more")
    if not 8 <= sg.max_payload_depth <= 256:
        raise ConfigError("[spamguard] max_payload_depth: must be between 8 and 256")
    if sg.over_limit not in ("policy-violation", "drop"):
        raise ConfigError("[spamguard] over_limit: must be \"policy-violation\" or \"drop\"")
    for entry in sg.rtbl_services:
        service, _, node = entry.partition(",")
        if not node.strip():
            raise ConfigError(f"[spamguard] rtbl_services: {entry!r} is not \"service JID, node\"")
        try:
            parse(service.strip())
        except InvalidJid as exc:
            raise ConfigError(f"[spamguard] rtbl_services: {exc}") from None
    try:
        cfg = dataclasses.replace(cfg, spamguard=dataclasses.replace(
            sg, blocked_domains=tuple(parse(d).domain for d in sg.blocked_domains),
            allowed_domains=tuple(parse(d).domain for d in sg.allowed_domains)))
    except InvalidJid as exc:
        raise ConfigError(f"[spamguard] blocked_domains/allowed_domains: {exc}") from None
    if cfg.firehose.max_items < 1:
        raise ConfigError("[firehose] max_items: must be positive")
    if cfg.aggregator.max_items < 1:
        raise ConfigError("[aggregator] max_items: must be positive")
    try:
        agg = cfg.aggregator
        cfg = dataclasses.replace(cfg, aggregator=dataclasses.replace(
            agg, sources=tuple(dict.fromkeys(parse(s).bare for s in agg.sources)),
            blocked_sources=tuple(parse(s).bare for s in agg.blocked_sources)))
    except InvalidJid as exc:
        raise ConfigError(f"[aggregator] sources/blocked_sources: {exc}") from None
    if any("@" in s or "/" in s for s in cfg.aggregator.sources):
        raise ConfigError("[aggregator] sources: service JIDs such as blog.example.net, not user JIDs")
    if parse(c.jid).bare in cfg.aggregator.sources:
        raise ConfigError("[aggregator] sources: this server's own service JID; list other servers")
    if cfg.http.listen:
        host, _, port = cfg.http.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"[http] listen: expected HOST:PORT (or \"\" to disable), got {cfg.http.listen!r}")
    for net in cfg.http.operators_from:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"[http] operators_from: {net!r} is not an address or network "
                              "(e.g. \"10.0.0.0/8\")") from None
    if cfg.http.base_url and not cfg.http.base_url.startswith(("http://", "https://")):
        raise ConfigError("[http] base_url: must start with http:// or https://")
    if lim.max_payload_bytes > lim.max_stanza_bytes // 2:
        raise ConfigError("[limits] max_payload_bytes: must be at most half of max_stanza_bytes")
    if not 1 <= c.connections <= 64:
        raise ConfigError(f"[component] connections: must be 1..64, got {c.connections}")
    cl = cfg.cluster
    if cl.enabled and not cfg.database.url.startswith("postgresql+asyncpg://"):
        raise ConfigError("[cluster] enabled: needs PostgreSQL ([database] url = \"postgresql+asyncpg://...\"); "
                          "SQLite is one process on one machine")
    if cl.heartbeat_seconds <= 0 or cl.lease_seconds < 3 * cl.heartbeat_seconds:
        raise ConfigError("[cluster] lease_seconds: must be at least 3 x heartbeat_seconds (and both positive)")
    if len(cl.worker_id) > 128 or any(ch.isspace() for ch in cl.worker_id):
        raise ConfigError("[cluster] worker_id: at most 128 characters, no spaces")
    return dataclasses.replace(cfg, component=dataclasses.replace(
        c, jid=jid.domain, users_domain=users_domain, admins=admins))


def load(path: str | None, env: dict[str, str] | None = None) -> Config:
    """Read, check and return the configuration.

    Args:
        path: the TOML file; None uses only the environment.
        env: the environment (defaults to os.environ).

    Raises:
        ConfigError: with one line naming the offending key.
    """
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except PermissionError:
            raise ConfigError(f"{path}: permission denied") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key, value in raw.items():
        if key not in SECTIONS:
            raise ConfigError(f"[{key}]: unknown section (known: {', '.join(SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a [{key}] table")
    parts = {name: _section(name, cls, raw.get(name, {}), env) for name, cls in SECTIONS.items()}
    return _validate(Config(**parts))


def render(cfg: Config, hide_secret: bool = True) -> str:
    """The effective configuration as TOML, for `check-config`."""
    out = []
    for name in SECTIONS:
        out.append(f"[{name}]")
        for f in fields(getattr(cfg, name)):
            v = getattr(getattr(cfg, name), f.name)
            if hide_secret and f.name == "secret":
                v = "********"
            elif hide_secret and f.name == "url":
                v = safe_url(v)
            if isinstance(v, tuple):
                out.append(f"{f.name} = [{', '.join(_q(x) for x in v)}]")
            elif isinstance(v, bool):
                out.append(f"{f.name} = {'true' if v else 'false'}")
            elif isinstance(v, (int, float)):
                out.append(f"{f.name} = {v}")
            else:
                out.append(f"{f.name} = {_q(v)}")
        out.append("")
    return "\n".join(out)


def safe_url(url: str) -> str:
    """A database URL with its password masked, for output and logs."""
    from sqlalchemy.engine import make_url
    try:
        parsed = make_url(url)
        # drivers also take the password as a query parameter (…?password=…)
        masked = {k: ("***" if "pass" in k.lower() else v) for k, v in parsed.query.items()}
        return parsed.set(query=masked).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show nothing of it that could be a secret
        return "(unreadable URL)"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
