# SPDX-License-Identifier: AGPL-3.0-or-later
"""Rich text that is safe to serve: the XHTML-IM subset of XEP-0071 (adapter layer).

XEP-0277 §Security asks for it: an entry's `xhtml` and `html` text constructs
(title, summary, content, rights) keep only an allow-list of elements and
attributes, links only `http:`, `https:`, `xmpp:` and `mailto:` URIs (images
only `http(s):`), and Atom links only those schemes. Scripts, styles, event
handlers and embedded objects go with their content; other unknown elements
are unwrapped, their text kept. Applied to what local users publish (before
it is signed), to what other servers push (after their signature is checked)
and once more when feeds are rendered.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from ..protocol import NS_ATOM, NS_XHTML

A = f"{{{NS_ATOM}}}"
X = f"{{{NS_XHTML}}}"

#: XEP-0071 §8's recommended profile, and the headings and lists it allows in its modules
ELEMENTS = frozenset({"a", "abbr", "acronym", "blockquote", "br", "cite", "code", "dd", "dfn", "div", "dl", "dt",
                      "em", "h1", "h2", "h3", "h4", "h5", "h6", "img", "kbd", "li", "ol", "p", "pre", "q", "samp",
                      "span", "strong", "ul", "var"})
ATTRIBUTES = {"a": {"href", "title", "type"}, "img": {"src", "alt", "height", "width", "title"},
              "blockquote": {"cite"}, "q": {"cite"}, "abbr": {"title"}, "acronym": {"title"}}
URL_ATTRIBUTES = {"href", "src", "cite"}
#: elements removed with everything inside them
DROPPED = frozenset({"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "template",
                     "noscript", "svg", "math", "head", "title", "meta", "link", "base", "form", "input", "button",
                     "select", "textarea", "audio", "video", "source", "canvas"})
LINK_SCHEMES = ("http:", "https:", "xmpp:", "mailto:")
IMAGE_SCHEMES = ("http:", "https:")
TEXT_CONSTRUCTS = ("title", "subtitle", "summary", "content", "rights")


def safe_url(url: str, image: bool = False) -> bool:
    """An absolute URL with an allowed scheme (control characters and spaces in the scheme
    are the classic ways around a check like this one, so they fail it)."""
    u = url.strip().lower()
    if any(ord(c) < 32 for c in u):
        return False
    return u.startswith(IMAGE_SCHEMES if image else LINK_SCHEMES)


def sanitize_entry(entry: ET.Element) -> None:
    """Make an Atom entry safe to serve, in place."""
    for tag in TEXT_CONSTRUCTS:
        for el in entry.findall(A + tag):
            kind = el.get("type", "text")
            if kind == "xhtml":
                _xhtml_children(el)
            elif kind == "html" and el.text:
                el.text = sanitize_html(el.text)
            if tag == "content" and el.get("src") is not None and not safe_url(el.get("src", "")):
                del el.attrib["src"]
    for link in entry.findall(A + "link"):
        if not safe_url(link.get("href", "")):
            entry.remove(link)


def _xhtml_children(parent: ET.Element) -> None:
    i = 0
    while i < len(parent):
        child = parent[i]
        name = child.tag.rsplit("}", 1)[-1]
        if child.tag.startswith(X) and name in ELEMENTS:
            _clean_attributes(child, name)
            _xhtml_children(child)
            i += 1
        elif name in DROPPED:
            _remove(parent, i)
        else:
            i = _unwrap(parent, i)  # unknown markup: its text stays, as text


def _clean_attributes(el: ET.Element, name: str) -> None:
    allowed = ATTRIBUTES.get(name, set())
    for key in list(el.attrib):
        value = el.attrib[key]
        if key not in allowed or (key in URL_ATTRIBUTES and not safe_url(value, image=name == "img")):
            del el.attrib[key]
    if name == "img" and "src" not in el.attrib:
        el.tag = X + "span"  # an image without a safe source is only its alt text
        el.text = el.attrib.pop("alt", "")
        for key in list(el.attrib):
            del el.attrib[key]


def _remove(parent: ET.Element, i: int) -> None:
    """Remove parent[i] and what it holds; its tail text stays."""
    child = parent[i]
    _append_text(parent, i, child.tail)
    del parent[i]


def _unwrap(parent: ET.Element, i: int) -> int:
    """Replace parent[i] by its text and children (sanitised later). Returns where to go on."""
    child = parent[i]
    _append_text(parent, i, child.text)
    grandchildren = list(child)
    tail = child.tail
    del parent[i]
    for offset, g in enumerate(grandchildren):
        parent.insert(i + offset, g)
    _append_text(parent, i + len(grandchildren), tail)
    return i


def _append_text(parent: ET.Element, i: int, text: str | None) -> None:
    """Add `text` where parent[i] stands: after the previous sibling, or in the parent's text."""
    if not text:
        return
    if i == 0:
        parent.text = (parent.text or "") + text
    else:
        prev = parent[i - 1]
        prev.tail = (prev.tail or "") + text


class _HtmlCleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._dropped = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED:
            self._dropped += 1
            return
        if self._dropped or tag not in ELEMENTS or (tag == "img" and not any(
                k == "src" and safe_url(v or "", image=True) for k, v in attrs)):
            return
        kept = [(k, v or "") for k, v in attrs
                if k in ATTRIBUTES.get(tag, set()) and (k not in URL_ATTRIBUTES or safe_url(v or "", tag == "img"))]
        self.out.append(f"<{tag}" + "".join(f' {k}="{html.escape(v)}"' for k, v in kept) + ">")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in DROPPED:
            self._dropped -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED:
            self._dropped = max(0, self._dropped - 1)
            return
        if not self._dropped and tag in ELEMENTS and tag not in ("br", "img"):
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self._dropped:
            self.out.append(html.escape(data, quote=False))


def sanitize_html(text: str) -> str:
    """Escaped HTML text (an Atom `html` construct) reduced to the allowed elements."""
    cleaner = _HtmlCleaner()
    cleaner.feed(text)
    cleaner.close()
    return "".join(cleaner.out)
