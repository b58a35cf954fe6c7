# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #6: the HTML pages in headless Chromium — what a person sees, and no injection."""

from __future__ import annotations

import os
import re

import pytest

from ..support import browser


@pytest.fixture(scope="module")
def chromium_available():
    if browser.chromium() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium must be installed in CI (scripts/setup.sh)")
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")


async def test_pages_render_posts_as_text(chromium_available, clients, component, alpha, tmp_path):
    xavier = await clients("xavier")
    await xavier.say("Rendered in a browser <script>document.title='pwned'</script> <b>not bold</b> #web")
    base = f"http://{alpha.ip}:5281"
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
