# SPDX-License-Identifier: AGPL-3.0-or-later
"""HTML rendering: Jinja2 templates with autoescaping, and the follow QR code (adapter layer).

Templates (xmppblog/http/templates/) receive plain data the handlers already
read through the core; they decide nothing about who may see what. Everything
users wrote reaches the page only through autoescaping (T11): the one place
that marks text as safe is `qr_svg`, whose SVG segno draws from module
positions alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import segno
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..core.addressing import Addressing
from .links import Segment, segments


@lru_cache(maxsize=512)
def qr_svg(uri: str) -> Markup:
    """An inline SVG QR code of `uri` (no Pillow, no image request: the page CSP allows no data: images).

    Args:
        uri: what the code encodes, e.g. `xmpp:alice@blog.example.org?roster`.

    Returns:
        The `<svg>` element, safe to embed as is: it holds no text, only a path.
    """
    # a full QR code, never a Micro QR (few phone scanners read those); medium error
    # correction: readable from a screen with a little glare
    code = segno.make_qr(uri, error="m")
    return Markup(code.svg_inline(scale=4, dark="#000", light="#fff"))


class Pages:
    """The template environment of one server: its filters know its addresses."""

    def __init__(self, addr: Addressing) -> None:
        self._addr = addr
        self._env = Environment(
            loader=PackageLoader("xmppblog.http", "templates"),
            autoescape=True,            # every {{ }} is escaped unless it is Markup
            undefined=StrictUndefined,  # a misspelt variable fails the render, not the reader
            trim_blocks=True, lstrip_blocks=True)
        self._env.filters["linked"] = self.linked
        self._env.globals["service_jid"] = addr.service_jid
        self._env.globals["users_domain"] = addr.users_domain

    def linked(self, text: str) -> list[Segment]:
        """Template filter: post text as segments (`{% for s in text|linked %}`)."""
        return segments(text, self._addr)

    def render(self, template: str, **context: Any) -> str:
        """The page `template` rendered with `context`."""
        return self._env.get_template(template).render(**context)
