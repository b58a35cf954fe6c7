# SPDX-License-Identifier: AGPL-3.0-or-later
"""One JID normalisation for everything that compares JIDs (T13)."""

from __future__ import annotations

import pytest

from xmppblog.core.addressing import Addressing
from xmppblog.core.errors import InvalidJid
from xmppblog.core.jid import bare, normalize, parse


@pytest.mark.parametrize("variant", [
    "Alice@Example.ORG", "alice@example.org.", "ALICE@EXAMPLE.ORG/Res", "ａｌｉｃｅ@example.org",
    " alice@example.org ",
])
def test_variants_normalise_to_one_bare_jid(variant):
    assert bare(variant) == "alice@example.org"


def test_resource_keeps_case():
    assert normalize("Alice@Example.org/Phone") == "alice@example.org/Phone"
    assert parse("example.org").local == "" and parse("example.org").bare == "example.org"


@pytest.mark.parametrize("bad", ["", "@example.org", "a@", "a b@example.org", "a@b@", "a@exa mple.org",
                                 "a@example.org/", "a\x00@example.org", "x" * 1100 + "@example.org",
                                 "a@..", "a:b@example.org"])
def test_invalid_jids(bad):
    with pytest.raises(InvalidJid):
        parse(bad)


def test_addressing_maps_owners_and_blogs():
    a = Addressing("blog.example.org", "example.org")
    assert a.owner_of("Alice@Blog.Example.org") == "alice@example.org"
    assert a.owner_of("blog.example.org") is None
    assert a.owner_of("bob\\40example.net@blog.example.org") is None
    assert a.owner_of("alice@other.org") is None
    assert a.blog_of("alice@example.org/x") == "alice@blog.example.org"
    assert a.blog_of("alice@example.net") is None


def test_serves_tells_our_domains_from_others_without_revalidating():
    a = Addressing("blog.example.org", "example.org")
    assert a.serves("bob@example.org/phone") and a.serves("alice@blog.example.org")
    assert a.serves("blog.example.org") and a.serves("bob\\40other.net@blog.example.org")
    assert not a.serves("bob@other.net") and not a.serves("blog.other.net")
    assert not a.serves("bob@sub.example.org") and not a.serves("example.org@evil.net/x")
