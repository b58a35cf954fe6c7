# SPDX-License-Identifier: AGPL-3.0-or-later
"""A throwaway ejabberd (Debian package) on a loopback address, for interop tests.

Follows shared/recipes/ejabberd: its own config dir, epmd-less Erlang
distribution, and a private /etc/hosts bind-mounted in its own mount namespace
(ejabberd resolves A records through glibc), so nothing in /etc is changed.
Needs root (unshare --mount; Debian's ejabberdctl runs only as root or ejabberd).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ports
from .prosody import PASSWORD, SECRET, port_open, wait_port

HERE = Path(__file__).parent


def require() -> None:
    """Skip the test when ejabberd cannot run here; in CI, fail it (CI installs ejabberd)."""
    import pytest
    problem = unavailable()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)


def unavailable() -> str | None:
    if shutil.which("ejabberdctl") is None:
        return "ejabberd is not installed (scripts/setup.sh installs it)"
    if os.geteuid() != 0:
        return "ejabberd tests need root (unshare --mount)"
    return None


@dataclass
class Ejabberd:
    """One node; with `join`, a second node of that node's cluster (same domain, own IP)."""

    domain: str
    ip: str
    base: Path
    users: list[str] = field(default_factory=list)
    extra_hosts: str = ""
    c2s_port: int = ports.C2S
    component_port: int = ports.COMPONENT
    #: ejabberd's domain_balancing for the component domain: (type, component_number), or None
    balancing: tuple[str, int] | None = None
    #: a running node of the cluster this node joins (its accounts then come from the cluster)
    join: Ejabberd | None = None
    cookie: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen | None = None

    @property
    def component(self) -> str:
        return f"blog.{self.domain}"

    @property
    def node(self) -> str:
        return f"ejabberd-test@{self.ip}"

    def _ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.base / "ejabberdctl"), *args], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        b = self.base
        if self.join is not None:
            self.cookie = self.join.cookie  # Erlang nodes of one cluster share their cookie
        if b.exists():
            shutil.rmtree(b)
        (b / "spool").mkdir(parents=True)
        (b / "logs").mkdir()
        for port in (self.c2s_port, ports.S2S, self.component_port, ports.ERL_DIST):
            if port_open(self.ip, port):
                raise RuntimeError(f"{self.ip}:{port} already in use")
        text = (HERE / "ejabberd.yml.in").read_text()
        for k, v in {"DOMAIN": self.domain, "IP": self.ip, "COMPONENT_DOMAIN": self.component,
                     "COMPONENT_SECRET": SECRET,
                     "C2S_PORT": str(self.c2s_port), "S2S_PORT": str(ports.S2S),
                     "COMPONENT_PORT": str(self.component_port)}.items():
            text = text.replace(f"@{k}@", v)
        if self.balancing is not None:
            kind, slots = self.balancing
            text += (f'domain_balancing:\n  "{self.component}":\n    type: {kind}\n'
                     f"    component_number: {slots}\n")
        (b / "ejabberd.yml").write_text(text)
        (b / "inetrc").write_text('{lookup, [file, native]}.\n{resolv_conf, ""}.\n')
        (b / "hosts").write_text(Path("/etc/hosts").read_text() + f"\n{self.ip} {self.domain} {self.component}\n"
                                 + self.extra_hosts)
        (b / "resolv.conf").write_text("options timeout:1 attempts:1\n")
        ip_tuple = "{" + self.ip.replace(".", ",") + "}"
        cfg = b / "ejabberdctl.cfg"
        cfg.write_text(f'EXEC_CMD=as_current_user\nERL_DIST_PORT={ports.ERL_DIST}\n'
                       f'ERL_OPTIONS="-setcookie {self.cookie} -kernel inet_dist_use_interface {ip_tuple}"\n'
                       f'EJABBERD_PID_PATH="{b}/ejabberd.pid"\nCONTRIB_MODULES_PATH="{b}/modules"\n'
                       f'EJABBERD_BYPASS_WARNINGS=true\n')
        cfg.chmod(0o600)
        ctl = b / "ejabberdctl"
        ctl.write_text(f'#!/bin/sh\nexec ejabberdctl --config-dir "{b}" --ctl-config "{cfg}" --spool "{b}/spool" '
                       f'--logs "{b}/logs" --node "{self.node}" "$@"\n')
        ctl.chmod(0o700)
        script = ('mount --bind "$1/hosts" /etc/hosts && mount --bind "$1/resolv.conf" /etc/resolv.conf '
                  '|| exit 97; exec "$1/ejabberdctl" foreground-quiet')
        log = open(b / "console.log", "ab")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                                      script, "sh", str(b)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._wait_ready()
        if self.join is not None:
            # replaces this node's fresh Mnesia with the cluster's; ejabberd restarts in the same VM
            r = self._ctl("join_cluster", self.join.node)
            if r.returncode:
                self.stop()
                raise RuntimeError(f"join_cluster {self.join.node} failed: {r.stdout}{r.stderr}")
            self._wait_ready(started=True)
        for u in self.users:
            r = self._ctl("register", u, self.domain, PASSWORD)
            if r.returncode:
                self.stop()
                raise RuntimeError(f"ejabberdctl register {u} failed: {r.stdout}{r.stderr}")

    def _wait_ready(self, started: bool = False) -> None:
        b = self.base
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"ejabberd exited: {(b / 'console.log').read_text()[-2000:]}")
            if (b / "ejabberd.pid").exists() and all(
                    port_open(self.ip, p) for p in (self.c2s_port, ports.S2S, self.component_port)) and (
                    not started or self._ctl("status").returncode == 0):
                return
            time.sleep(0.1)
        raise RuntimeError("ejabberd did not open its ports")

    def stop(self) -> None:
        """Stop this node (again: nothing happens; its pid may belong to another process by then)."""
        if self.proc is None:
            return
        pid_file = self.base / "ejabberd.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
        if self.proc is not None:
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            self.proc = None
        wait_port(self.ip, self.c2s_port, timeout=20, closed=True)
