# SPDX-License-Identifier: AGPL-3.0-or-later
"""Policy layer: every inbound push from another server is checked here before it touches storage."""
