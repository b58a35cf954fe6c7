# SPDX-License-Identifier: AGPL-3.0-or-later
"""Storage tests run on SQLite and PostgreSQL: the `db_url`, `stack` and `backend` fixtures of tests/conftest.py;
`cluster_engine` for what runs on PostgreSQL only."""

import pytest


@pytest.fixture
async def cluster_engine(db_url):
    """A migrated engine on PostgreSQL, for what only a cluster runs (the SQLite run is skipped:
    a cluster runs on PostgreSQL only)."""
    from xmppblog.storage import migrate
    from xmppblog.storage.engine import create_engine, is_sqlite
    if is_sqlite(db_url):
        pytest.skip("a cluster runs on PostgreSQL only")
    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()
