# SPDX-License-Identifier: AGPL-3.0-or-later
"""Chat copies show posts as written: their own title, line breaks, and edits marked (issue #15)."""

from __future__ import annotations

from xmppblog.core.model import EDITED, EventKind, OutboxEvent
from xmppblog.im.text import im_body, written

ATOM = "http://www.w3.org/2005/Atom"
XHTML = "http://www.w3.org/1999/xhtml"


def entry(inner: str) -> str:
    return f"<entry xmlns='{ATOM}'>{inner}</entry>"


def copy(payload: str, state: str | None = None) -> str:
    return im_body(OutboxEvent(EventKind.IM_POST, "alice@blog.e.org", "urn:xmpp:microblog:0", ("b@e.org",),
                               item_id="3f9a1c0b2d4e", payload=payload, publisher="alice@e.org", state=state))


def test_title_and_line_breaks_are_kept():
    libervia = entry("<title>Paging test</title><content>first line\nsecond  line</content>"
                     f"<content type='xhtml'><div xmlns='{XHTML}'><p>first line</p><p>second line</p></div></content>")
    assert copy(libervia).startswith("Paging test\nfirst line\nsecond line\n#3f9a1c")
    xhtml_only = entry(f"<title>T</title><content type='xhtml'><div xmlns='{XHTML}'>a<br/>b</div></content>")
    assert written(xhtml_only) == "T\na\nb"
    # a post of one text (XEP-0277 puts it in <title/>) or a title derived from the content: no title line
    assert written(entry("<title>just a note\nwith two lines</title>")) == "just a note\nwith two lines"
    assert written(entry("<title>a long text that was</title><content>a long text that was cut</content>")) == \
        "a long text that was cut"


def test_an_edit_is_marked():
    payload = entry("<title>hello</title>")
    assert copy(payload).startswith("hello\n")
    assert copy(payload, EDITED).startswith("✎ edited: hello\n")
