# SPDX-License-Identifier: AGPL-3.0-or-later
"""Shared fixtures: database URLs (SQLite always, PostgreSQL when available)."""

from __future__ import annotations

import os

import pytest

from .support.postgres import PostgresServer

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A throwaway PostgreSQL on loopback, or the one named by XMPPBLOG_TEST_PG_URL."""
    url = os.environ.get("XMPPBLOG_TEST_PG_URL")
    if url:
        yield url
        return
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    problem = server.unavailable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {problem}")
        pytest.skip(f"PostgreSQL lane skipped: {problem} (scripts/install-deps.sh installs it)")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Each storage test runs on SQLite and on PostgreSQL (a fresh database each)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/test.db"
    base = request.getfixturevalue("pg_server")
    from .support.postgres import fresh_database
    return fresh_database(base)


#: (attack class, attempts, reached a user) rows filled by tests/e2e/test_spamguard.py
ADVERSARIAL: list[tuple[str, int, int]] = []


#: (scenario, {figure: value}) reported by the robustness tests (issue #8)
FIGURES: list[tuple[str, dict[str, int]]] = []


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if FIGURES:
        tr.section("robustness report")
        for name, figures in FIGURES:
            tr.write_line(f"{name:<44} " + "  ".join(f"{k}={v}" for k, v in figures.items()))
    if not ADVERSARIAL:
        return
    tr.section("spamguard adversarial report")
    tr.write_line(f"{'attack':<48} {'attempts':>8} {'reached a user':>15}")
    for name, attempts, reached in ADVERSARIAL:
        tr.write_line(f"{name:<48} {attempts:>8} {reached:>15}")


@pytest.fixture
async def stack(db_url):
    """(Core, unit-of-work factory, FakeClock) over a migrated database, per backend."""
    from xmppblog.core.pubsub import Limits
    from xmppblog.storage import migrate
    from xmppblog.storage.engine import create_engine, sessionmaker
    from xmppblog.storage.repos import uow_factory

    from .support.core import FakeClock, test_core

    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    clock = FakeClock()
    counter = iter(range(1, 10**9))
    uow = uow_factory(sessionmaker(engine), clock)
    core = test_core(uow, engine, db_url, clock, Limits(max_payload_bytes=4096, max_items_per_node=5,
                                                        max_page_items=3), new_id=lambda: f"id{next(counter)}")
    yield core, uow, clock
    core.search.close()
    await engine.dispose()


@pytest.fixture
async def backend(stack):
    """(PubsubService, unit-of-work factory, FakeClock) over a migrated database, per backend."""
    core, uow, clock = stack
    return core.pubsub, uow, clock
