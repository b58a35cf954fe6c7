# SPDX-License-Identifier: AGPL-3.0-or-later
"""Real Prosody servers on loopback for the test suite.

Each instance gets its own 127.x address and data directory, on the suite's
own ports (tests/support/ports.py). Names resolve through a DNS server of the
suite's (tests/support/dns.py) that gives each domain an A record and the SRV
records of its ports. Follows shared/recipes/prosody-federation.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ports
from .dns import DnsServer, Zone

HERE = Path(__file__).parent
TEMPLATE = HERE / "prosody.cfg.lua.in"
PASSWORD = "password"
SECRET = "blogsecret"


def port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(ip: str, port: int, timeout: float = 20.0, closed: bool = False) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port_open(ip, port) != closed:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{ip}:{port} still {'open' if closed else 'closed'} after {timeout}s")


@dataclass
class Prosody:
    name: str
    domain: str
    ip: str
    base: Path
    users: list[str] = field(default_factory=list)
    component_prefix: str = "blog"
    c2s_port: int = ports.C2S
    component_port: int = ports.COMPONENT
    proc: subprocess.Popen | None = None

    @property
    def dir(self) -> Path:
        return self.base / self.name

    @property
    def component(self) -> str:
        return f"{self.component_prefix}.{self.domain}"

    @property
    def config_path(self) -> Path:
        return self.dir / "prosody.cfg.lua"

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def render(self, dns: str, log_level: str = "info") -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        (self.dir / "certs").mkdir(exist_ok=True)
        text = TEMPLATE.read_text()
        for key, value in {
            "DIR": str(self.dir), "LOG_LEVEL": log_level, "IP": self.ip,
            "C2S_PORT": str(self.c2s_port), "S2S_PORT": str(ports.S2S), "COMPONENT_PORT": str(self.component_port),
            "DNS": dns, "DOMAIN": self.domain,
            "COMPONENT_DOMAIN": self.component, "COMPONENT_SECRET": SECRET,
        }.items():
            text = text.replace(f"@{key}@", value)
        self.config_path.write_text(text)

    def register(self, users: list[str]) -> None:
        procs = [subprocess.Popen(["prosodyctl", "--config", str(self.config_path), "register",
                                   u, self.domain, PASSWORD],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for u in users]
        for u, p in zip(users, procs, strict=True):
            _, err = p.communicate(timeout=60)
            if p.returncode:
                raise RuntimeError(f"prosodyctl register {u}@{self.domain} failed: {err.decode()}")

    def start(self) -> None:
        for port in (self.c2s_port, ports.S2S, self.component_port):
            if port_open(self.ip, port):
                raise RuntimeError(f"{self.ip}:{port} already in use")
        log = open(self.dir / "console.log", "ab")
        self.proc = subprocess.Popen(["prosody", "--config", str(self.config_path), "-F"],
                                     cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody {self.name} exited: {self.tail()}")
            if all(port_open(self.ip, p) for p in (self.c2s_port, ports.S2S, self.component_port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"prosody {self.name} did not open its ports: {self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        wait_port(self.ip, self.c2s_port, closed=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, n: int = 30) -> str:
        out = []
        for f in ("prosody.log", "console.log"):
            p = self.dir / f
            if p.exists():
                out += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(out)


class ProsodyNet:
    """Several federating Prosody instances and the DNS server that names them."""

    def __init__(self, base: Path, servers: list[Prosody], log_level: str = "info",
                 extra_hosts: str = "") -> None:
        """`extra_hosts`: more names, in hosts-file lines (`IP NAME…`), e.g. an ejabberd's."""
        self.base = base
        self.servers = {s.name: s for s in servers}
        self.log_level = log_level
        self.extra_hosts = extra_hosts
        self.dns: DnsServer | None = None

    def __getitem__(self, name: str) -> Prosody:
        return self.servers[name]

    def hosts(self) -> str:
        return "".join(f"{s.ip} {s.domain} {s.component} rogue.{s.domain} pubsub.{s.domain}\n"
                       for s in self.servers.values()) + self.extra_hosts

    def start(self) -> None:
        if shutil.which("prosody") is None:
            raise RuntimeError("prosody is not installed (scripts/setup.sh installs it)")
        self.base.mkdir(parents=True, exist_ok=True)
        addresses = {name: line.split()[0] for line in self.hosts().splitlines() if line.strip()
                     for name in line.split()[1:]}
        self.dns = DnsServer(Zone(addresses, ports.S2S, ports.C2S)).start()
        for s in self.servers.values():
            if s.dir.exists():
                shutil.rmtree(s.dir)
            s.render(self.dns.address, os.environ.get("PROSODY_LOG_LEVEL", self.log_level))
            s.register(s.users)
        try:
            for s in self.servers.values():
                s.start()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
