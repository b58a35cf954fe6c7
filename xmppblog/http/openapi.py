# SPDX-License-Identifier: AGPL-3.0-or-later
"""OpenAPI 3.1 description of the read-only JSON API and the Atom feeds, served at /api/openapi.json.

Every GET route that is not an HTML page has an entry here (tests/unit/test_openapi.py
walks the router the composition root builds); the pages are for people and are not described.
"""

from __future__ import annotations

from typing import Any

from .. import __version__

_POST = {"type": "object", "properties": {
    "id": {"type": "string"}, "author": {"type": "string", "description": "bare JID"},
    "title": {"type": ["string", "null"], "description": "the post's own title; null when it has none"},
    "text": {"type": "string", "description": "as written, line breaks kept"},
    "published": {"type": "string", "format": "date-time"},
    "updated": {"type": "string", "format": "date-time"}, "xmpp_uri": {"type": "string"},
    "url": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}}}
_PAGE = {"type": "object", "properties": {
    "posts": {"type": "array", "items": {"$ref": "#/components/schemas/Post"}},
    "next_cursor": {"type": ["string", "null"], "description": "pass as ?cursor= for the next page"}}}
_HEALTH = {"type": "object", "required": ["status", "service", "host", "database"], "properties": {
    "status": {"enum": ["ok", "unavailable"]}, "service": {"type": "string", "description": "the component JID"},
    "host": {"type": "string", "description": "'connected', else 'down' (to operators: why)"},
    "database": {"type": "string", "description": "'ok', else 'down' (to operators: why)"},
    "multicast": {"type": ["string", "null"], "description": "the host's XEP-0033 service, if found"},
    "disco": {"type": "object", "additionalProperties": {"type": "string"},
              "description": "with ?deep=1: each JID's answer through the host"},
    "reason": {"type": "string", "description": "when unavailable: why"}}}
_HEALTH_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
_CURSOR = [{"name": "cursor", "in": "query", "schema": {"type": "string"}},
           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]
_LIMIT = _CURSOR[1]
_ERR = {"description": "not found (or not public)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _get(summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [], "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "400": {"description": "bad request"}, "404": _ERR}}}


def _atom(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A feed: Atom (RFC 4287), at most `limit` entries, newest first; no cursor (readers poll the head)."""
    return {"get": {"summary": summary, "parameters": [*(params or []), _LIMIT], "responses": {
        "200": {"description": "an Atom feed (sanitised XHTML content; served sandboxed)",
                "content": {"application/atom+xml": {"schema": {"type": "string"}}}},
        "400": {"description": "bad request"}, "404": {"description": "not found (or not public)"},
        "429": {"description": "too many searches from this address (search and tag feeds)"}}}}


_USER = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "local part of a user of this server"}
_TAG = {"name": "tag", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "a hashtag without '#', e.g. xmpp"}
_Q = {"name": "q", "in": "query", "required": True, "schema": {"type": "string"},
      "description": 'words, "a phrase", #tag, @user@domain, from:user@domain'}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "xmppblog public API", "version": __version__,
             "description": "Read-only access to the public posts of one xmppblog server. CORS enabled."},
    "paths": {
        "/api/openapi.json": _get("This document", {"type": "object"}),
        "/api/users": _get("Users with a public blog", {"type": "object", "properties": {"users": {
            "type": "array", "items": {"type": "object"}}}}),
        "/api/users/{user}/posts": _get("A user's posts, newest first", {"$ref": "#/components/schemas/Page"},
                                        [_USER, *_CURSOR]),
        "/api/users/{user}/posts/{item}": _get("A post with its replies", {"$ref": "#/components/schemas/Post"},
                                               [_USER, {"name": "item", "in": "path", "required": True,
                                                        "schema": {"type": "string"}}]),
        "/api/timeline": _get("The public timeline, newest first", {"$ref": "#/components/schemas/Page"}, _CURSOR),
        "/api/search": _get("Search public posts", {"$ref": "#/components/schemas/Page"}, [
            _Q, {"name": "order", "in": "query", "schema": {"enum": ["newest", "relevance"]}}, *_CURSOR]),
        "/api/stats": _get("Server statistics", {"type": "object"}),
        "/api/network/timeline": _get(
            "The network timeline, newest first: this server's public posts and, on an aggregator, its "
            "sources' (consented and signed), the last 24 hours", {"$ref": "#/components/schemas/Page"}, _CURSOR),
        "/api/trends": _get("Hashtags rising over the last hour and the last day (distinct authors)", {
            "type": "object", "properties": {w: {"type": "array", "items": {"type": "object", "properties": {
                "tag": {"type": "string"}, "authors": {"type": "integer"}, "authors_before": {"type": "integer"},
                "score": {"type": "number"}}}} for w in ("hour", "day")}}),
        "/api/directory": _get("Discoverable users, their servers and post counts, most active first; an "
                               "aggregator's sources and whether they answer", {
            "type": "object", "properties": {
                "users": {"type": "array", "items": {"type": "object", "properties": {
                    "jid": {"type": "string"}, "server": {"type": "string"}, "posts": {"type": "integer"},
                    "local": {"type": "boolean"}}}},
                "sources": {"type": "array", "items": {"type": "object", "properties": {
                    "source": {"type": "string"}, "state": {"enum": ["following", "unreachable", "refused"]}}}},
                "next_cursor": {"type": ["string", "null"]}}},
            [{"name": "q", "in": "query", "schema": {"type": "string"}, "description": "a word the JID contains"},
             *_CURSOR]),
        "/api/suggestions": _get(
            "Who to follow: the most active discoverable authors, as far as "
            "public figures tell (who a user follows and what they track are theirs: their own `suggest` by "
            "chat uses them)",
            {"type": "object", "properties": {"for": {"type": "string"}, "suggestions": {
                "type": "array", "items": {"type": "object", "properties": {
                    "jid": {"type": "string"}, "server": {"type": "string"}, "why": {"type": "string"}}}}}},
            [{"name": "for", "in": "query", "required": True, "schema": {"type": "string"},
              "description": "a bare JID"}, _LIMIT]),
        "/feeds/network.atom": _atom("The network timeline"),
        "/api/stream": {"get": {
            "summary": "Server-Sent Events of public posts as they are stored: this server's, and on an "
                       "aggregator every source's (each consented and signed by its author)",
            "description": "Each event is `event: post`, an opaque `id:` cursor and `data:` one JSON object: "
                           "the Post fields, `source` (the JID the post was stored under) and `entry` (the "
                           "signed Atom entry as XML text, docs/signatures.md). Reconnect with the header "
                           "`Last-Event-ID` (or ?last_event_id=) to resume, up to 24 hours back. A comment "
                           "line every 15 s keeps an idle stream open. Edits come again with the same post "
                           "id; retractions are not streamed.",
            "parameters": [
                {"name": "author", "in": "query", "schema": {"type": "string"}, "description": "a bare JID"},
                {"name": "tag", "in": "query", "schema": {"type": "string"}, "description": "a hashtag without '#'"},
                {"name": "q", "in": "query", "schema": {"type": "string"},
                 "description": 'words, "a phrase", #tag, @user@domain, from:user@domain'},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
                 "description": "the id of the last event received"}],
            "responses": {"200": {"description": "the stream", "content": {"text/event-stream": {"schema": {
                                      "type": "string"}}}},
                          "400": {"description": "a malformed query or cursor",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                          "429": {"description": "too many streams open from this address"}}}},
        # Atom feeds: what the HTML pages announce with <link rel="alternate">
        "/feeds/timeline.atom": _atom("The public timeline"),
        "/feeds/users/{user}.atom": _atom("A user's public posts", [_USER]),
        "/feeds/tags/{tag}.atom": _atom("Public posts with a #hashtag", [_TAG]),
        "/feeds/search.atom": _atom("Public posts matching a search", [_Q]),
        # Operations (http/health.py) and a user's export (http/export.py)
        "/healthz": {"get": {"summary": "Whether this server is up: the host connection and the database",
                             "parameters": [{"name": "deep", "in": "query", "schema": {"enum": ["1"]},
                                             "description": "also a disco round trip through the host to the "
                                                            "service JID and a blog JID (cached 10 s)"}],
                             "responses": {"200": {"description": "up", "content": _HEALTH_JSON},
                                           "503": {"description": "down; `reason` says why",
                                                   "content": _HEALTH_JSON}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format)", "parameters": [],
                             "responses": {"200": {"description": "OK", "content": {
                                 "text/plain": {"schema": {"type": "string"}}}}}}},
        "/export/{token}": {"get": {
            "summary": "A user's posts and comments as an Atom file, behind the link the chat bot's `export` gave",
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "unguessable, valid for an hour"}],
            "responses": {"200": {"description": "an Atom feed to download",
                                  "content": {"application/atom+xml": {"schema": {"type": "string"}}}},
                          "404": {"description": "no such export, or expired"},
                          "429": {"description": "too many downloads of this export in a minute"}}}},
    },
    "components": {"schemas": {"Post": _POST, "Page": _PAGE, "Health": _HEALTH,
                               "Error": {"type": "object", "properties": {"error": {"type": "string"}}}}},
}
