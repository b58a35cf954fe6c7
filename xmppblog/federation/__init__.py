# SPDX-License-Identifier: AGPL-3.0-or-later
"""Federation adapters: follow nodes on other servers, receive their pushes through spamguard."""
