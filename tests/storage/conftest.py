# SPDX-License-Identifier: AGPL-3.0-or-later
"""Storage tests run on SQLite and PostgreSQL: the `db_url`, `stack` and `backend` fixtures of tests/conftest.py."""
