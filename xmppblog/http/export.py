# SPDX-License-Identifier: AGPL-3.0-or-later
"""GET /export/{token}: a user's export, behind the link the chat bot gave them (adapter layer).

The token is the only key (core/accounts.py `Links`: unguessable, expires, one per
user), so the route is on the public listener; the answer is an Atom file to
download, never cached, sandboxed like every feed, and leaks no referrer.
Unknown and expired tokens get the same 404.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from ..core.accounts import Accounts
from ..pubsub.xep_0277 import export_feed
from ..spamguard.buckets import TokenBuckets

#: downloads per token and minute: a leaked link cannot be turned into a load generator
DOWNLOADS_PER_MINUTE = 6


class ExportRoute:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self._downloads = TokenBuckets(DOWNLOADS_PER_MINUTE, time.monotonic, max_keys=10_000)

    def register(self, app: web.Application) -> None:
        app.router.add_get("/export/{token}", self.get)

    async def get(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if not self._downloads.take(token):
            return web.Response(status=429, text="Too many downloads of this export; try again in a minute.")
        export = await self.accounts.export_by_link(token)
        name = export.user.split("@", 1)[0]
        return web.Response(
            text=export_feed(export, datetime.now(UTC)), content_type="application/atom+xml", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-xmppblog.atom"',
                     "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                     "Content-Security-Policy": "default-src 'none'; sandbox", "X-Content-Type-Options": "nosniff"})
