# SPDX-License-Identifier: AGPL-3.0-or-later
"""HTTP adapter: JSON API, Atom feeds and HTML pages over the core, read-only, public posts only."""
