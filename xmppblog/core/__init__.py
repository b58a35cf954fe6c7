# SPDX-License-Identifier: AGPL-3.0-or-later
"""Core service model: the rules of xmppblog. No I/O, no XML; imports only the stdlib."""
