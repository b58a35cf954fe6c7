# SPDX-License-Identifier: AGPL-3.0-or-later
"""A private PostgreSQL server for the test suite (Debian's postgresql package).

initdb refuses to run as root, so the cluster is created and run as the
`postgres` system user, in a temporary directory, on a loopback port. The
system cluster is never touched.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = _free_port()
        self.bindir = _bindir()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children), or None if stopped."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def unavailable(self) -> str | None:
        if self.bindir is None:
            return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "no 'postgres' system user"
        return None

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        assert self.bindir is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
            os.chmod(self.workdir, 0o755)
            parent = self.workdir.parent
            while parent != parent.parent:  # postgres must be able to traverse to its data dir
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
                parent = parent.parent
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "pg.log"),
                  "-o", f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "-w", "start")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start")

    def start_again(self) -> None:
        """Start the server of an existing data directory (after `stop`)."""
        assert self.bindir is not None
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "pg.log"),
                  "-o", f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "-w", "start")

    def stop(self) -> None:
        if self.bindir and self.data.exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            except subprocess.CalledProcessError:
                pass


def fresh_database(admin_url: str) -> str:
    """Create an empty database on the server of `admin_url` and return its URL."""
    import asyncio

    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    if running:
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            ex.submit(asyncio.run, create()).result()
    else:
        asyncio.run(create())
    return admin_url.rsplit("/", 1)[0] + "/" + name
