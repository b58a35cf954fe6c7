# SPDX-License-Identifier: AGPL-3.0-or-later
"""Wire layer: the slixmpp component connection, routing and namespaces."""
