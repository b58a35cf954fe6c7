# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #6: the HTML pages in headless Chromium — what a person sees, and no injection."""

from __future__ import annotations

import os
import re

import pytest

from ..support import browser, ports


@pytest.fixture(scope="module")
def chromium_available():
    if browser.chromium() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium must be installed in CI (scripts/setup.sh)")
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")


async def test_pages_render_posts_as_text(chromium_available, clients, component, alpha, tmp_path):
    xavier = await clients("xavier")
    await xavier.say("Rendered in a browser <script>document.title='pwned'</script> <b>not bold</b> #web")
    base = f"http://{alpha.ip}:{ports.HTTP}"
    for path in ("/", "/u/xavier", "/search?q=browser"):
        rendered = browser.dom(base + path)
        assert "Rendered in a browser" in rendered, path
        # the only elements are ours: what carol wrote stayed text
        assert "<script" not in rendered and "<b>not bold" not in rendered, path
        assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in rendered, path
        assert "pwned" not in re.search(r"<title>(.*?)</title>", rendered).group(1)
    profile = browser.dom(f"{base}/u/xavier")
    assert 'href="xmpp:xavier@blog.alpha.test?roster"' in profile, "a clickable xmpp: link to follow"
    with_posts = browser.screenshot(f"{base}/u/xavier", tmp_path / "xavier.png")
    empty = browser.screenshot(f"{base}/search", tmp_path / "empty.png")
    assert with_posts == (900, 700) and empty == (900, 700)
    assert (tmp_path / "xavier.png").read_bytes() != (tmp_path / "empty.png").read_bytes()
    assert (tmp_path / "xavier.png").stat().st_size > (tmp_path / "empty.png").stat().st_size, \
        "a page with posts carries more to see than an empty search page"


#: what a browser's or a feed reader's autodiscovery reads: the first Atom alternate of the page
FEED_LINK = "document.querySelector('link[rel=alternate][type=\"application/atom+xml\"]').href"


async def test_feed_autodiscovery_in_chromium(chromium_available, clients, component, alpha, tmp_path,
                                             record_testsuite_property):
    """Issue #14: each page announces its feed; following the announced href gives valid Atom."""
    import aiohttp
    import feedparser
    xavier = await clients("xavier")
    assert (await xavier.say("Found by autodiscovery #feedreaders")).startswith("Posted #")
    base = f"http://{alpha.ip}:{ports.HTTP}"
    pages = {"/": "/feeds/timeline.atom", "/u/xavier": "/feeds/users/xavier.atom",
             "/tags/feedreaders": "/feeds/tags/feedreaders.atom"}
    async with aiohttp.ClientSession() as http:
        for path, feed in pages.items():
            href = await browser.evaluate(base + path, FEED_LINK)
            assert href == base + feed, path  # resolved by the browser against the page's address
            async with http.get(href) as r:
                assert r.status == 200 and r.content_type == "application/atom+xml", href
                parsed = feedparser.parse(await r.read())
            assert not parsed.bozo and parsed.version == "atom10", (href, parsed.get("bozo_exception"))
            assert "Found by autodiscovery #feedreaders" in [e.title for e in parsed.entries], href
    tags = await browser.evaluate(f"{base}/u/xavier", "[...document.querySelectorAll('p.text a.tag')]"
                                                       ".map(a => a.href)")
    assert f"{base}/tags/feedreaders" in tags, "a #hashtag links to its tag page"
    assert await browser.evaluate(f"{base}/u/xavier", "document.querySelectorAll('.follow svg path').length") > 0, \
        "the profile shows the follow QR code"
    for name, path in (("timeline", "/"), ("profile", "/u/xavier")):
        shot = tmp_path / f"feeds-{name}.png"
        assert browser.screenshot(base + path, shot, "900,1000") == (900, 1000)
        record_testsuite_property(f"screenshot_feeds_{name}", str(shot))  # listed in --junitxml reports
