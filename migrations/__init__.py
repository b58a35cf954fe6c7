# SPDX-License-Identifier: AGPL-3.0-or-later
"""Alembic migrations, installed as the package `xmppblog.migrations`."""
