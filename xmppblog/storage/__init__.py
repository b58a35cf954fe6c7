# SPDX-License-Identifier: AGPL-3.0-or-later
"""Storage layer: SQLAlchemy 2 async repositories implementing core.ports; imports only core."""
