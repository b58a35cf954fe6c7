# SPDX-License-Identifier: AGPL-3.0-or-later
"""Protocol adapters for plain IM clients: presence subscriptions to blog JIDs."""
