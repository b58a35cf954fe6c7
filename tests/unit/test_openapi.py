# SPDX-License-Identifier: AGPL-3.0-or-later
"""The OpenAPI document describes every JSON and Atom route the server registers."""

from __future__ import annotations

import re

from xmppblog.http.openapi import OPENAPI


def routes(tmp_path) -> set[str]:
    """Every GET path the listener serves as the composition root builds it, but the HTML pages."""
    from xmppblog.app import App
    from xmppblog.config import load

    cfg = tmp_path / "xmppblog.toml"
    cfg.write_text(f'[component]\njid = "blog.example.org"\nsecret = "s"\n'
                   f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n')
    app = App(load(str(cfg), env={}))
    try:
        return {r.resource.canonical for r in app.http_site().app.router.routes()
                if r.method == "GET" and r.resource.canonical not in PAGES}
    finally:
        app.search_index.close()


#: for people, not programs: not described
PAGES = {"/", "/u/{user}", "/u/{user}/{item}", "/search", "/tags/{tag}", "/network"}


def test_every_route_but_the_pages_is_described(tmp_path):
    registered = routes(tmp_path)
    assert {"/feeds/tags/{tag}.atom", "/api/search", "/healthz", "/metrics", "/export/{token}"} <= registered
    missing = registered - set(OPENAPI["paths"])
    assert not missing, f"routes without an OpenAPI entry (xmppblog/http/openapi.py): {sorted(missing)}"
    stale = set(OPENAPI["paths"]) - registered
    assert not stale, f"OpenAPI entries without a route: {sorted(stale)}"


def test_feeds_are_described_as_atom_and_path_parameters_are_declared():
    for path, item in OPENAPI["paths"].items():
        get = item["get"]
        declared = {p["name"] for p in get["parameters"] if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), path
        content = get["responses"]["200"]["content"]
        if path.startswith("/feeds/"):
            assert list(content) == ["application/atom+xml"], path
