# SPDX-License-Identifier: AGPL-3.0-or-later
"""xmppblog: federated XMPP microblogging as an XEP-0114 component."""

__version__ = "0.1.0"
