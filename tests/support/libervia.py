# SPDX-License-Identifier: AGPL-3.0-or-later
"""Libervia (Debian's `libervia-cli` and `libervia-backend`, 0.9) driven headless, for
tests against the suite's Prosody (issue #15).

Libervia is a backend (a Twisted daemon holding the XMPP connection) and frontends that
talk to it over a bridge; the command-line frontend `libervia-cli` (`li`) only knows the
D-Bus bridge. So each `Libervia` runs, in a temporary directory of its own:

- a private D-Bus session bus (`dbus-daemon` with our own config: a socket in that
  directory, no service activation, so nothing on the bus starts anything by itself);
- the backend in the foreground, with HOME, XDG_CONFIG_HOME (its `libervia.conf`) and
  XDG_DATA_HOME (its SQLite database, log and cache) in that directory, on the D-Bus bridge;
- `libervia-cli` commands with a timeout, returning exit code, stdout and stderr.

Profiles connect to the test server through the profile parameters `Force server` and
`Force port` (the suite's Prosody listens on its own address and port) with
`check_certificate` false (the test servers offer no TLS). Everything started here has
a process group of its own and is stopped by that group's id, never by name.

The backend starts in about 3 s on 2 cores (2.6 to 4.7 s measured; `start_seconds`);
creating and connecting a profile takes about 4.5 s more (each `libervia-cli` command
costs about 0.7 s, mostly its own start), so tests share one backend and few commands.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: Debian's launchers run `#!/usr/bin/env python3`; another python3 first on PATH (a venv,
#: pyenv) does not have Debian's Twisted and wokkel, and /usr/share/libervia holds a
#: `twisted/plugins` directory that would shadow them
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
BACKEND = "/usr/bin/libervia-backend"
CLI = "/usr/bin/libervia-cli"

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def unavailable() -> str | None:
    """Why Libervia cannot run here, or None."""
    for path in (BACKEND, CLI):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: install libervia-cli (scripts/setup.sh test installs it)"
    if shutil.which("dbus-daemon", path=PATH) is None:
        return "dbus-daemon is missing: install dbus-daemon (scripts/setup.sh test installs it)"
    return None


@dataclass
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"li {' '.join(self.args)} -> exit {self.rc}\n--- stdout\n{self.stdout}"
                f"\n--- stderr\n{self.stderr}")


class Libervia:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.bus_proc: subprocess.Popen | None = None
        self.backend: subprocess.Popen | None = None
        self.bus_address = ""
        self.start_seconds: float | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DBUS_", "XDG_", "PYTHON", "VIRTUAL_ENV", "LIBERVIA_", "SAT_"))}
        env.update(PATH=PATH, HOME=str(self.dir / "home"), XDG_CONFIG_HOME=str(self.dir / "config"),
                   XDG_DATA_HOME=str(self.dir / "data"), XDG_CACHE_HOME=str(self.dir / "cache"),
                   XDG_RUNTIME_DIR=str(self.dir / "run"), LANG="C.UTF-8", LC_ALL="C.UTF-8",
                   DBUS_SESSION_BUS_ADDRESS=self.bus_address)
        env.pop("DISPLAY", None)
        return env

    @property
    def log(self) -> Path:
        return self.dir / "data" / "libervia" / "libervia.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _write_config(self) -> None:
        for sub in ("home", "config/libervia", "data/libervia", "cache", "run", "bus"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "run", 0o700)
        (self.dir / "bus.conf").write_text(BUS_CONFIG.format(dir=self.dir / "bus"))
        local = self.dir / "data" / "libervia"
        # the only bridge is D-Bus; storage is SQLite in local_dir (the temporary directory)
        (self.dir / "config" / "libervia" / "libervia.conf").write_text(
            "[DEFAULT]\n"
            "bridge = dbus\n"
            f"local_dir = {local}\n"
            f"log_dir = {local}\n"
            f"pid_dir = {local}\n"
            f"downloads_dir = {self.dir / 'downloads'}\n"
            "log_level = info\n")

    def start(self, timeout: float = 90.0) -> None:
        """Start the bus and the backend; returns when the backend answers on the bus."""
        self._write_config()
        began = time.monotonic()
        self.bus_proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=open(self.dir / "dbus.log", "ab"), stdin=subprocess.DEVNULL,
            env=self.env, start_new_session=True, text=True)
        self.bus_address = self.bus_proc.stdout.readline().strip()
        if not self.bus_address:
            self.stop()
            raise RuntimeError("dbus-daemon printed no address: "
                               + (self.dir / "dbus.log").read_text(errors="replace"))
        out = open(self.dir / "backend.out", "ab")
        self.backend = subprocess.Popen([BACKEND, "fg"], stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir,
                                        start_new_session=True)
        out.close()
        end = began + timeout
        while True:
            if self.backend.poll() is not None:
                self.stop()
                raise RuntimeError(f"libervia-backend exited ({self.backend.returncode}):\n"
                                   + self.backend_output()[-3000:])
            if "Backend is ready" in self.log_text():
                probe = self.run("profile", "list", timeout=20)
                if probe.rc == 0:
                    break
            if time.monotonic() > end:
                self.stop()
                raise TimeoutError(f"libervia-backend not ready after {timeout}s:\n"
                                   + self.log_text()[-3000:])
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - began

    def backend_output(self) -> str:
        p = self.dir / "backend.out"
        return (p.read_text(errors="replace") if p.exists() else "") + self.log_text()

    def run(self, *args: str, input: str | None = None, timeout: float = 60.0,
            check: bool = False) -> Result:
        """`libervia-cli ARGS…` with `input` on its stdin (`blog set` reads the post's body
        there); a command still running after `timeout` is stopped (its own process group)
        and reported with exit code -9."""
        proc = subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                                env=self.env, cwd=self.dir, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(input, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            _stop_group(proc, signal.SIGKILL)
            out, err = proc.communicate()
            rc, err = -9, err + f"\n[timed out after {timeout}s]"
        result = Result(list(args), rc, out, _quiet(err))
        if check and rc != 0:
            raise AssertionError(str(result))
        return result

    def create_profile(self, profile: str, jid: str, password: str, server: str, port: int) -> None:
        """A profile for `jid` that connects to `server`:`port` without TLS, then connect it."""
        self.run("profile", "create", profile, "-j", jid, "-x", password, check=True)
        for name, value in (("Force server", server), ("Force port", str(port)),
                            ("check_certificate", "false"), ("autoconnect_backend", "false")):
            self.run("param", "set", "-p", profile, "Connection", name, value, check=True)
        self.run("profile", "connect", "-p", profile, "-c", timeout=60, check=True)

    def stop(self) -> None:
        """Stop the backend, then the bus: each by its own process group (we created both)."""
        for proc in (self.backend, self.bus_proc):
            if proc is not None:
                _stop_group(proc, signal.SIGTERM)
        if self.bus_proc is not None and self.bus_proc.stdout is not None:
            self.bus_proc.stdout.close()


#: what every `libervia-cli` command prints on stderr on Debian 12 (optional modules that
#: are not packaged), dropped so that failures show what matters
NOISE = ("ProgressBar not available, please download it at http://pypi.python.org/pypi/progressbar\n"
         "Progress bar deactivated\n--\n\n"
         "Missing module for plugin sat_frontends.jp.output_template: sat_templates module is not "
         "available, please install it or check your path to use template engine\n")


def _quiet(stderr: str) -> str:
    return stderr.replace(NOISE, "")


def _stop_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
