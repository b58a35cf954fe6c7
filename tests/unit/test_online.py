# SPDX-License-Identifier: AGPL-3.0-or-later
"""Online tracking from the presences the component receives."""

from __future__ import annotations

from xmppblog.im.online import OnlineTracker


def test_resources_come_and_go_by_full_jid():
    t = OnlineTracker()
    t.available("kim@e.org", "phone")
    t.available("kim@e.org", "laptop")
    t.unavailable("kim@e.org", "phone")
    assert t.is_online("kim@e.org")
    t.unavailable("kim@e.org", "laptop")
    assert not t.is_online("kim@e.org") and len(t) == 0


def test_bare_unavailable_on_a_new_contact_approval_keeps_known_resources():
    """Prosody sends <presence type='unavailable' from='kim@e.org'/> to each newly approved
    contact before kim's resources' presence: it must not mark kim offline for every blog."""
    t = OnlineTracker()
    t.available("kim@e.org", "phone")
    t.unavailable("kim@e.org", "")
    assert t.is_online("kim@e.org")
    t.unavailable("nobody@e.org", "")
    assert not t.is_online("nobody@e.org")
