# SPDX-License-Identifier: AGPL-3.0-or-later
"""SQLite runs inline on the event loop; units of work on it take turns (storage/engine.py)."""

from __future__ import annotations

import asyncio
import threading

from xmppblog.core.model import EventKind, OutboxEvent
from xmppblog.storage import migrate
from xmppblog.storage.engine import TaskLock, create_engine, serial_lock, sessionmaker
from xmppblog.storage.repos import uow_factory

EV = OutboxEvent(EventKind.NODE_PURGED, "a@blog.example.org", "n", ("b@example.org",))


async def test_concurrent_writers_take_turns_instead_of_blocking_the_loop(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    await migrate.upgrade(url)
    engine = create_engine(url)
    uow = uow_factory(sessionmaker(engine))
    order: list[str] = []
    threads: set[int] = set()

    async def writer(name: str) -> None:
        async with uow() as u:
            order.append(f"{name} in")
            await u.outbox.add(EV)
            threads.add(threading.get_ident())
            await asyncio.sleep(0.05)  # another writer would wait on SQLite's lock here
            await u.commit()
            order.append(f"{name} out")

    await asyncio.wait_for(asyncio.gather(writer("a"), writer("b")), 5)
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert threads == {threading.get_ident()}, "statements ran on the loop's thread"
    async with uow() as u:
        assert await u.outbox.pending_count() == 2
        async with uow() as inner:  # the same task may open another unit of work
            assert await inner.outbox.pending_count() == 2
    assert serial_lock(engine) is serial_lock(engine)
    await engine.dispose()


async def test_task_lock_is_reentrant_for_its_holder_only():
    lock = TaskLock()
    await lock.acquire()
    await lock.acquire()
    other = asyncio.ensure_future(lock.acquire())
    await asyncio.sleep(0.01)
    assert not other.done()
    lock.release()
    await asyncio.sleep(0.01)
    assert not other.done(), "still held once"
    lock.release()
    await asyncio.wait_for(other, 1)
    lock.release()


def test_a_crash_that_skips_dispose_still_exits(tmp_path):
    """No worker thread outlives the loop: an error before `engine.dispose()` ends the
    process instead of leaving it hanging at exit on a non-daemon aiosqlite thread."""
    import subprocess
    import sys
    script = (
        "import asyncio\n"
        "from xmppblog.storage.engine import create_engine\n"
        "async def main():\n"
        f"    engine = create_engine('sqlite+aiosqlite:///{tmp_path}/y.db')\n"
        "    async with engine.connect() as c:\n"
        "        await c.exec_driver_sql('SELECT 1')\n"
        "    raise SystemExit('boom')\n"
        "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "boom" in done.stderr
