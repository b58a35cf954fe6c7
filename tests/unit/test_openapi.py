# SPDX-License-Identifier: AGPL-3.0-or-later
"""The OpenAPI document describes every JSON and Atom route the server registers."""

from __future__ import annotations

import re
from types import SimpleNamespace

from xmppblog.core.addressing import Addressing
from xmppblog.http.openapi import OPENAPI
from xmppblog.http.server import HttpApi


async def _no_stats():
    return {}


def routes() -> set[str]:
    """Every GET path of the real router under /api/ and /feeds/ (templated, as OpenAPI writes them)."""
    blogs = SimpleNamespace(addr=Addressing("blog.example.org", "example.org"))
    api = HttpApi(blogs, None, None, "http://blog.example.org", _no_stats, directory=_no_stats)  # type: ignore[arg-type]
    return {r.resource.canonical for r in api.app.router.routes()
            if r.method == "GET" and r.resource.canonical.startswith(("/api/", "/feeds/"))}


def test_every_api_and_feed_route_is_described():
    registered = routes()
    assert "/feeds/tags/{tag}.atom" in registered and "/api/search" in registered
    missing = registered - set(OPENAPI["paths"])
    assert not missing, f"routes without an OpenAPI entry (xmppblog/http/openapi.py): {sorted(missing)}"
    stale = {p for p in OPENAPI["paths"] if p.startswith(("/api/", "/feeds/"))} - registered
    assert not stale, f"OpenAPI entries without a route: {sorted(stale)}"


def test_feeds_are_described_as_atom_and_path_parameters_are_declared():
    for path, item in OPENAPI["paths"].items():
        get = item["get"]
        declared = {p["name"] for p in get["parameters"] if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), path
        content = get["responses"]["200"]["content"]
        if path.startswith("/feeds/"):
            assert list(content) == ["application/atom+xml"], path
