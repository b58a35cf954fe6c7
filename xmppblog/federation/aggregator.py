# SPDX-License-Identifier: AGPL-3.0-or-later
"""An aggregator's sources: following other xmppblog servers' firehoses (adapter layer).

`[aggregator] sources` names service JIDs. Each is admitted only once it
answers as an xmppblog server (its disco#info carries `urn:xmppblog:0`,
federation/verify.py); then this server holds one subscription to its firehose
node (`urn:xmppblog:firehose:0`), caught up at once and after every reconnect
from the newest post it holds (federation/remote.py). Pushed entries go through
the entry pipeline, which also demands a signature and the author's consent
under it (federation/receive.py); stored, they are searched, tracked and
listed like any followed remote post. A source that does not answer is tried
again with a growing delay; the others are served meanwhile. An aggregator
(one with sources) also finds more: every DISCOVER_SECONDS, the services of
the remote blogs this server follows are candidates, and each that answers as
an xmppblog server, and is not blocked, becomes a source. A followed source
is asked every SOURCE_CHECK_SECONDS whether it still answers: one that stopped
is marked `unreachable` (in /api/directory and /api/stats) but kept, and when
it answers again, what it published meanwhile is fetched from where this
server stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..core import errors
from ..core.jid import parse
from ..core.model import NS_MICROBLOG, NodeRef, SubState
from ..core.remote_feeds import RemoteFeeds
from ..protocol import NS_FIREHOSE
from ..xmpp.component import BlogComponent
from .remote import RemoteBlogs
from .verify import Verifier

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0
SOURCE_CHECK_SECONDS = 60.0
DISCOVER_SECONDS = 600.0
#: what a source's state reads as, to admins and API users
STATE_NAMES = {SubState.SUBSCRIBED: "following", SubState.PENDING: "unreachable", SubState.NONE: "refused"}


def firehose_of(source: str) -> NodeRef:
    return NodeRef(source, NS_FIREHOSE)


def is_blocked(source: str, blocked: tuple[str, ...]) -> bool:
    """Whether `source` is one of `blocked` or on one of their domains' subdomains."""
    return any(source == b or source.endswith("." + b) for b in blocked)


class Sources:
    def __init__(self, component: BlogComponent, blogs: RemoteBlogs, remote: RemoteFeeds, verifier: Verifier,
                 sources: tuple[str, ...], blocked: tuple[str, ...], max_items: int) -> None:
        self.component = component
        self.blogs = blogs
        self.remote = remote
        self.verifier = verifier
        own = remote.addr.service_jid
        self.sources = tuple(s for s in sources if not is_blocked(s, blocked) and s != own)
        self.blocked = blocked
        self.max_items = max_items
        #: source -> its state as last seen: subscribed, pending (not answering: retrying), none (refused)
        self.state: dict[str, SubState] = {s: SubState.PENDING for s in self.sources}
        self.check_seconds = SOURCE_CHECK_SECONDS
        self.discover_seconds = DISCOVER_SECONDS
        #: whether this process follows the sources now (a cluster: one worker does)
        self.runs: Callable[[str], bool] = lambda job: True
        for s in sources:
            if is_blocked(s, blocked):
                log.warning("aggregator: source %s is also in blocked_sources; not followed", s)

    async def run(self) -> None:
        """Follow every source, each on its own, and look for more, until cancelled (at shutdown)."""
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for source in self.sources:
                    if source not in tasks:
                        tasks[source] = asyncio.ensure_future(self._keep_following(source))
                if not self.sources:
                    return  # not an aggregator
                await asyncio.sleep(self.discover_seconds)
                if self.component.online.is_set() and self.runs("aggregator"):
                    try:
                        await self.discover()
                    except errors.BlogError as exc:
                        log.warning("aggregator: looking for more sources failed: %s", exc.text)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def discover(self) -> list[str]:
        """Add as sources the xmppblog services of the remote blogs followed here; returns them."""
        candidates = sorted({parse(sub.service).domain for sub in await self.remote.held()
                             if sub.node == NS_MICROBLOG} - set(self.sources))
        found = []
        for service in candidates:
            if is_blocked(service, self.blocked) or service == self.remote.addr.service_jid:
                continue
            if await self.verifier.users_domain(service) is None:
                continue  # not an xmppblog server (a PEP blog), or silent: asked again next time
            log.info("aggregator: found source %s (a server whose blogs are followed here)", service)
            self.sources = (*self.sources, service)
            self.state[service] = SubState.PENDING
            found.append(service)
        return found

    def states(self) -> dict[str, str]:
        """Each source and whether it is followed, unreachable or refused us."""
        return {s: STATE_NAMES[state] for s, state in self.state.items()}

    async def _keep_following(self, source: str) -> None:
        """Follow `source` (retrying with a growing delay), then watch that it still answers."""
        delay = FIRST_RETRY_SECONDS
        while True:
            if not self.component.online.is_set() or not self.runs("aggregator"):
                await asyncio.sleep(FIRST_RETRY_SECONDS)  # connected, and this worker's job
                continue
            try:
                state = await self.follow(source)
            except errors.BlogError as exc:
                log.warning("aggregator: following %s failed: %s", source, exc.text)
                state = SubState.PENDING
            self.state[source] = state
            if state is SubState.SUBSCRIBED:
                await self._watch(source)
                delay = FIRST_RETRY_SECONDS
                continue  # it answers again: followed again, from where we stopped
            if state is SubState.NONE:
                log.warning("aggregator: source %s refused us (its firehose is not open to us)", source)
                return
            log.warning("aggregator: source %s not followed yet; next try in %.0fs", source, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _watch(self, source: str) -> None:
        """Until `source` stops answering."""
        while True:
            await asyncio.sleep(self.check_seconds)
            if not self.component.online.is_set():
                continue  # our own host is away: nothing to learn about the source
            if not await self.blogs.answers(source):
                log.warning("aggregator: source %s stopped answering; kept, and followed again when it is back",
                            source)
                self.state[source] = SubState.PENDING
                return
            if not await self.remote.consented(source, NS_FIREHOSE):
                log.warning("aggregator: source %s ended our subscription; following it again", source)
                self.state[source] = SubState.PENDING
                return

    async def follow(self, source: str) -> SubState:
        """One attempt: SUBSCRIBED (and caught up), PENDING (no answer, or not an xmppblog
        server yet: tried again) or NONE (it refused: its firehose is not open)."""
        if await self.verifier.users_domain(source) is None:
            log.info("aggregator: %s does not answer as an xmppblog server", source)
            return SubState.PENDING
        ref = firehose_of(source)
        await self.remote.follow_source(ref, self.max_items)
        state = await self.blogs.subscribe(ref)
        if state is SubState.SUBSCRIBED:
            log.info("aggregator: following the firehose of %s", source)
        return state
