# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run the real `xmppblog` command as a subprocess against a test Prosody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import ports
from .prosody import SECRET, Prosody


class Component:
    def __init__(self, server: Prosody, workdir: Path, db_url: str | None = None,
                 extra: str = "") -> None:
        self.server = server
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url or f"sqlite+aiosqlite:///{workdir}/xmppblog.db"
        self.config = workdir / "xmppblog.toml"
        self.log = workdir / "xmppblog.log"
        self.config.write_text(
            f'[component]\njid = "{server.component}"\nsecret = "{SECRET}"\n'
            f'host = "{server.ip}"\nport = {server.component_port}\n'
            f'users_domain = "{server.domain}"\nadmins = ["admin@{server.domain}"]\n'
            f'reconnect_max_delay = 2.0\n'
            f'[database]\nurl = "{self.db_url}"\n{extra}\n'
            f'[federation]\nfirst_retry_seconds = 1.0\n'
            # the scenarios send far more commands per user than a person would
            f'[spamguard]\nim_commands_per_minute = 600\nlocal_publishes_per_minute = 600\n'
            # a real-time block list served by the rogue test component (tests/e2e/test_spamguard.py)
            f'rtbl_services = ["rogue.{server.domain.replace("alpha", "beta")}, rtbl"]\n'
            f'[http]\nlisten = "{server.ip}:{ports.HTTP}"\n'
            f'[log]\nlevel = "debug"\n')
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    def for_load(self) -> Component:
        """Tune the test config for load runs (benchmarks, robustness): INFO logging, no
        HTTP, no real-time block list, and no per-user or per-server rate limits."""
        text = "\n".join(line for line in self.config.read_text().splitlines()
                         if not line.startswith("rtbl_services"))
        text = (text.replace('level = "debug"', 'level = "info"')
                .replace(f'listen = "{self.server.ip}:{ports.HTTP}"', 'listen = ""')
                .replace("im_commands_per_minute = 600", "im_commands_per_minute = 0")
                .replace("local_publishes_per_minute = 600", "local_publishes_per_minute = 0")
                .replace("[spamguard]\n", "[spamguard]\nremote_events_per_minute = 0\n"
                         "remote_domain_events_per_minute = 0\nsubscribes_per_minute = 0\n"))
        self.config.write_text(text)
        return self

    async def stored_markers(self) -> set[int]:
        """Post markers (`bench-N-`, tests/support/mini.py) of every item in this component's database."""
        from sqlalchemy import select

        from xmppblog.storage.engine import create_engine
        from xmppblog.storage.tables import ItemRow

        from .mini import MARK

        engine = create_engine(self.db_url)
        try:
            async with engine.connect() as conn:
                payloads = (await conn.execute(select(ItemRow.payload))).scalars().all()
        finally:
            await engine.dispose()
        return {int(m) for p in payloads for m in MARK.findall(p.encode())}

    def start(self, wait: bool = True) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        out = open(self.log, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "xmppblog", "-c", str(self.config), "run"],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        out.close()
        if wait:
            self.wait_log("connected to ", since_start=True)

    def log_text(self, since_start: bool = False) -> str:
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as fh:
            if since_start:
                fh.seek(self._log_offset)
            return fh.read().decode(errors="replace")

    def wait_log(self, needle: str, timeout: float = 20.0, since_start: bool = True, count: int = 1) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.log_text(since_start).count(needle) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"xmppblog exited ({self.proc.returncode}):\n{self.log_text(True)[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{needle!r} not logged within {timeout}s:\n{self.log_text(True)[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
