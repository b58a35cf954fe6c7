# SPDX-License-Identifier: AGPL-3.0-or-later
"""Rich text reduced to the XEP-0071 subset (pubsub/sanitize.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.pubsub.sanitize import safe_url, sanitize_entry, sanitize_html

ATOM = "http://www.w3.org/2005/Atom"
XHTML = "http://www.w3.org/1999/xhtml"


def clean(inner: str, extra: str = "") -> str:
    entry = ET.fromstring(f"<entry xmlns='{ATOM}'><title>t</title><content type='xhtml'>"
                          f"<div xmlns='{XHTML}'>{inner}</div></content>{extra}</entry>")
    sanitize_entry(entry)
    return ET.tostring(entry, encoding="unicode")


@pytest.mark.parametrize("attack", [
    "<script>alert(1)</script>", "<img src='x' onerror='alert(1)'/>", "<a href='javascript:alert(1)'>x</a>",
    "<a href=' JaVaScRiPt:alert(1)'>x</a>", "<a href='java&#x09;script:alert(1)'>x</a>",
    "<a href='data:text/html,&lt;script&gt;'>x</a>", "<iframe src='https://evil'/>",
    "<svg><script>alert(1)</script></svg>", "<p style='background:url(javascript:alert(1))'>x</p>",
    "<object data='x'/>", "<p onclick='alert(1)'>x</p>", "<img src='javascript:alert(1)'/>",
    "<form action='https://evil'><input name='pw'/></form>",
])
def test_attacks_are_removed(attack):
    out = clean(attack).lower()
    for bad in ("script", "onerror", "onclick", "javascript:", "data:", "iframe", "style=", "object", "<form",
                "<input"):
        assert bad not in out, (attack, out)


def test_allowed_markup_and_text_survive():
    out = clean("Hello <em>there</em>, <a href='https://example.net/x' title='t'>link</a> "
                "<font color='red'>red <strong>bold</strong></font> tail<img src='https://e/p.png' alt='pic'/>"
                "<ul><li>one</li></ul>")
    assert "https://example.net/x" in out and "<html:em>there</html:em>" in out
    assert "red <html:strong>bold</html:strong> tail" in out, "unknown markup is unwrapped, its text kept"
    assert "font" not in out and "https://e/p.png" in out and "<html:li>one</html:li>" in out


def test_atom_links_and_html_text_constructs():
    entry = ET.fromstring(f"<entry xmlns='{ATOM}'><title type='html'>&lt;b&gt;hi&lt;/b&gt;&lt;script&gt;x"
                          f"&lt;/script&gt;</title><link rel='alternate' href='javascript:x'/>"
                          f"<link rel='related' href='https://ok.example/'/><content src='javascript:y'/></entry>")
    sanitize_entry(entry)
    out = ET.tostring(entry, encoding="unicode")
    assert "javascript" not in out and "https://ok.example/" in out
    assert entry.find(f"{{{ATOM}}}title").text == "hi"
    assert sanitize_html("<p onclick=x>a<a href='https://b'>b</a><img src='data:x'></p>") == \
        '<p>a<a href="https://b">b</a></p>'


def test_urls():
    assert safe_url("https://x") and safe_url("xmpp:a@b") and safe_url("mailto:a@b")
    assert not safe_url("javascript:x") and not safe_url("jav\tascript:x") and not safe_url("//x")
    assert not safe_url("xmpp:a@b", image=True) and safe_url("http://x/p.png", image=True)
