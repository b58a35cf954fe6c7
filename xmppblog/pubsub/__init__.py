# SPDX-License-Identifier: AGPL-3.0-or-later
"""Protocol adapters: XEP-0060/0277/0059/0030/0050 stanzas <-> BlogService calls."""
