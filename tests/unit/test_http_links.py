# SPDX-License-Identifier: AGPL-3.0-or-later
"""Post text -> segments (http/links.py): tags and mentions as the core reads them, hostile text kept as text."""

from __future__ import annotations

import time

import pytest

from xmppblog.core.addressing import Addressing
from xmppblog.core.text import hashtags, mentions
from xmppblog.http.links import Segment, person_href, segments, tag_href

ADDR = Addressing("blog.example.org", "example.org")


def linked(text: str) -> list[tuple[str, str, str | None]]:
    out = segments(text, ADDR)
    assert "".join(s.text for s in out) == text, "segments keep every character, in order"
    return [tuple(s) for s in out]


def test_plain_text_is_one_segment():
    assert linked("just words, no links") == [("text", "just words, no links", None)]
    assert linked("") == []


def test_tags_and_mentions_link_where_they_belong():
    assert linked("hi @alice@example.org #Garden!") == [
        ("text", "hi ", None), ("mention", "@alice@example.org", "/u/alice"),
        ("text", " ", None), ("tag", "#Garden", "/tags/garden"), ("text", "!", None)]


@pytest.mark.parametrize(("jid", "href"), [
    ("alice@example.org", "/u/alice"),                 # a user of this server
    ("alice@blog.example.org", "/u/alice"),            # her blog JID
    ("bob@other.org", "xmpp:bob@other.org"),           # anybody else
    ("bob\\40other.org@blog.example.org", "xmpp:bob%5C40other.org@blog.example.org"),  # a remote author's proxy
    ("a?b#c@other.org", "xmpp:a%3Fb%23c@other.org"),   # URI delimiters in a local part stay in the JID
])
def test_person_href(jid, href):
    assert person_href(jid, ADDR) == href


def test_what_links_is_what_the_core_indexes():
    text = "#one,#two #three-four (#five) x#no &#no @a@b.org @c@d.org. mail e@f.org @g@h"
    assert [t for kind, t, _ in linked(text) if kind == "tag"] == ["#one", "#two", "#three-four", "#five"]
    assert [s.text[1:].lower() for s in segments(text, ADDR) if s.kind == "tag"] == hashtags(text)
    assert [s.text[1:] for s in segments(text, ADDR) if s.kind == "mention"] == mentions(text)


@pytest.mark.parametrize("text", [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "#<b>bold</b>",
    '@"onmouseover=alert(1)@evil.org',
    "&#35;notatag &lt;#x&gt;",
    "<a href='javascript:alert(1)'>#click</a>",
])
def test_hostile_text_stays_text_and_hrefs_stay_ours(text):
    for s in segments(text, ADDR):
        assert s.kind in ("text", "tag", "mention")
        if s.href is not None:
            assert s.href.startswith(("/tags/", "/u/", "xmpp:")), s
            assert not set(s.href) & set("<>\"' "), s
    assert linked("#<b>bold</b>") == [("text", "#<b>bold</b>", None)]
    assert ("tag", "#click", "/tags/click") in linked("<a href='javascript:alert(1)'>#click</a>")


def test_a_tag_inside_a_mention_is_part_of_the_mention():
    assert linked("@x#y@example.org") == [("mention", "@x#y@example.org", "/u/x%23y")]


@pytest.mark.parametrize(("text", "href"), [
    ("#café", "/tags/caf%C3%A9"),
    ("#日本語", "/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E"),
    ("#Ｔａｇ", "/tags/tag"),          # fullwidth: NFKC, as search compares
    ("#STRASSE", "/tags/strasse"),
])
def test_unicode_tags_link_to_their_normal_form(text, href):
    assert linked(text) == [("tag", text, href)]
    assert tag_href(text[1:]) == href


def test_a_very_long_text_is_split_quickly_and_whole():
    text = ("#tag @u@example.org <b>\"x\"</b> " * 3000) + "@" * 50_000 + "#" * 50_000
    started = time.perf_counter()
    out = segments(text, ADDR)
    assert time.perf_counter() - started < 2
    assert "".join(s.text for s in out) == text
    assert sum(s.kind == "tag" for s in out) == 3000 and sum(s.kind == "mention" for s in out) == 3000
    assert linked("#" + "x" * 100) == [("tag", "#" + "x" * 64, "/tags/" + "x" * 64), ("text", "x" * 36, None)]


def test_segments_are_named_tuples():
    assert segments("#a", ADDR)[0] == Segment("tag", "#a", "/tags/a")
