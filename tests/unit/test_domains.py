# SPDX-License-Identifier: AGPL-3.0-or-later
"""Domains as policy sees them: parents, registrable domains, block lists (spamguard)."""

from __future__ import annotations

from xmppblog.spamguard.domains import covered, parents, registrable
from xmppblog.spamguard.rtbl import BlockLists, sha256_hex


def test_parents_and_registrable_domains():
    assert parents("a.b.evil.example") == ["a.b.evil.example", "b.evil.example", "evil.example", "example"]
    assert registrable("a1.evil.example") == registrable("evil.example") == "evil.example"
    assert registrable("x.co.uk") == "x.co.uk" and registrable("a.b.github.io") == "b.github.io"
    assert registrable("localhost") == "localhost"
    assert covered("a1.evil.example", {"evil.example"}) and not covered("notevil.example", {"evil.example"})


def test_block_lists_cover_subdomains_and_only_change_from_their_sources():
    lists = BlockLists([("rtbl.example", "bans")])
    lists.apply(("rtbl.example", "bans"), [sha256_hex("spam.example"), sha256_hex("eve@ok.example").upper()])
    assert lists.blocks("x@b.spam.example", "b.spam.example") and lists.blocks("eve@ok.example", "ok.example")
    assert not lists.blocks("bob@ok.example", "ok.example")
    lists.apply(("elsewhere.example", "bans"), purge=True)
    assert len(lists) == 2, "only the configured source changes the list"
    lists.apply(("rtbl.example", "bans"), removed=[sha256_hex("spam.example")])
    assert not lists.blocks("x@spam.example", "spam.example")


def test_each_block_list_is_reloaded_on_its_own():
    """A resync (or a purge) of one list leaves the entries of the others in force."""
    a, b = ("rtbl.example", "bans"), ("other-rtbl.example", "muc_bans")
    lists = BlockLists([a, b])
    lists.apply(a, [sha256_hex("spam.example")])
    lists.apply(b, [sha256_hex("eve@evil.example")], purge=True)
    assert lists.blocks("x@spam.example", "spam.example"), "loading list b dropped list a"
    lists.apply(a, purge=True)
    assert not lists.blocks("x@spam.example", "spam.example") and lists.blocks("eve@evil.example", "evil.example")
    assert len(lists) == 1
