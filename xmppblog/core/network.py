# SPDX-License-Identifier: AGPL-3.0-or-later
"""The network-wide view (issue #17): the network timeline, trends, the directory of
discoverable users and who to follow (core layer).

On an aggregator it covers what its sources' firehoses brought (each post
signed and consented by its author) and this server's own consented public
posts; on any other server, its own. What may be in it is core/stream.py's
`streamed` rule, and a local user is listed or suggested only if they
consented (core/discovery.py).

Trends count, for each hashtag, the distinct authors who used it in the last
hour against the 23 before, and in the last day against the day before: one
author repeating a tag moves nothing. Suggestions come from who the people a
user follows follow, from recent posts on the words they track, and, for
someone who follows nobody, from the most active discoverable authors.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from .discovery import Discovery
from .jid import stored_bare
from .model import NS_FIREHOSE, NS_MICROBLOG, FoundPost, Item, NodeRef
from .ports import Clock, EntryCodec
from .stream import PostStream
from .text import hashtags, words
from .transactions import Transactions

#: rows a network timeline page reads at most (posts of non-streamed nodes are skipped)
TIMELINE_ROWS = 500
#: the newest posts of the last two days trends and suggestions read at most
RECENT_ROWS = 20_000
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Trend:
    tag: str
    now: int          # distinct authors in the window (the last hour, or day)
    before: int       # distinct authors in the window before it (23 hours, or the day before)
    score: float      # how much faster than before


@dataclass(frozen=True, slots=True)
class Listed:
    """A discoverable user in the directory."""

    jid: str
    server: str       # the xmppblog service their posts come from
    posts: int
    local: bool


@dataclass(frozen=True, slots=True)
class Suggestion:
    jid: str
    server: str
    why: str


def matching(listed: list[Listed], word: str) -> list[Listed]:
    """The entries of a directory whose JID contains `word` (all if it is empty)."""
    word = word.strip().casefold()
    return [e for e in listed if word in e.jid.casefold()] if word else listed


class NetworkView:
    def __init__(self, transactions: Transactions, stream: PostStream, discovery: Discovery, codec: EntryCodec,
                 clock: Clock) -> None:
        self._tx = transactions
        self.stream = stream
        self.nodes = stream.nodes
        self.discovery = discovery
        self._codec = codec
        self._clock = clock

    async def timeline(self, before: int | None, limit: int) -> tuple[list[tuple[int, FoundPost]], int | None]:
        """The newest posts of the network view, before position `before`; and the cursor of
        the next page (None: no more within a day)."""
        since = self._clock.now() - DAY
        async with self._tx() as tx:
            rows = await tx.items.stored_before(before, since, TIMELINE_ROWS, (NS_MICROBLOG, NS_FIREHOSE))
            streamed = await self.stream.streamed(tx, rows)
        posts = streamed[:limit]
        if len(streamed) > limit:
            return posts, posts[-1][0]
        return posts, (rows[-1][0] if len(rows) == TIMELINE_ROWS else None)

    async def _recent(self) -> list[tuple[NodeRef, Item]]:
        since = self._clock.now() - 2 * DAY
        async with self._tx() as tx:
            rows = await tx.items.stored_before(None, since, RECENT_ROWS, (NS_MICROBLOG, NS_FIREHOSE))
            return [(post.ref, post.item) for _, post in await self.stream.streamed(tx, rows)]

    async def trends(self, limit: int = 10) -> tuple[list[Trend], list[Trend]]:
        """(rising over the last hour, rising over the last day), best first."""
        now = self._clock.now()
        authors: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for _, item in await self._recent():
            age = now - item.updated
            window = "hour" if age < HOUR else "rest" if age < DAY else "yesterday"
            for tag in hashtags(self._codec.summary(item.payload)):
                authors[tag][window].add(stored_bare(item.publisher))

        Window = Callable[[dict[str, set[str]]], set[str]]

        def ranked(now_of: Window, before_of: Window, span: float) -> list[Trend]:
            out = []
            for tag, by in authors.items():
                n, b = len(now_of(by)), len(before_of(by))
                if n:
                    out.append(Trend(tag, n, b, round(n / (1 + b / span), 2)))
            return sorted(out, key=lambda t: (-t.score, -t.now, t.tag))[:limit]

        hour = ranked(lambda by: by["hour"], lambda by: by["rest"], 23.0)
        day = ranked(lambda by: by["hour"] | by["rest"], lambda by: by["yesterday"], 1.0)
        return hour, day

    async def directory(self, word: str = "", limit: int = 500) -> list[Listed]:
        """Discoverable users with posts here, their servers and post counts, most active first;
        `word`: only JIDs that contain it."""
        async with self._tx() as tx:
            local = await tx.feed.public_blogs(self.nodes.addr.service_jid)
            remote = await tx.items.authors_on(NS_FIREHOSE)
        listed = [Listed(node.owner, node.ref.service, n, True) for node, n in local if self.discovery.consents(node)]
        listed += [Listed(stored_bare(publisher), service, n, False) for service, publisher, n, _ in remote]
        return matching(sorted(listed, key=lambda e: (-e.posts, e.jid)), word)[:limit]

    async def suggestions(self, user: str, limit: int = 10, from_follows: bool = True) -> list[Suggestion]:
        """Whom `user` might follow, with why. `from_follows`: whether what they follow and track
        may be used (their own request; through HTTP, only if they are discoverable)."""
        user = stored_bare(user)
        listed = {e.jid: e for e in await self.directory(limit=100_000)}
        followed: set[str] = set()
        counted: Counter[str] = Counter()
        topics: dict[str, str] = {}
        if from_follows:
            async with self._tx() as tx:
                for sub in await tx.subs.following(user):
                    owner = self.nodes.addr.owner_of(sub.ref.service)
                    followed.add(owner if owner is not None else sub.ref.service)
                for author in list(followed):
                    if self.nodes.addr.is_local_user(author):
                        for sub in await tx.subs.following(author):
                            owner = self.nodes.addr.owner_of(sub.ref.service)
                            if owner is not None:
                                counted[owner] += 1
                tracked = set(await tx.im.tracked(user))
            if tracked:
                for _, item in await self._recent():
                    said = set(words(self._codec.summary(item.payload)))
                    hit = sorted(tracked & said)
                    if hit:
                        topics.setdefault(stored_bare(item.publisher), hit[0])
        out: list[Suggestion] = []
        seen = {user} | followed

        def add(jid: str, why: str) -> None:
            if jid not in seen and jid in listed and len(out) < limit:
                seen.add(jid)
                out.append(Suggestion(jid, listed[jid].server, why))

        for jid, n in counted.most_common():
            add(jid, f"followed by {n} of the people you follow")
        for jid, word in topics.items():
            add(jid, f"writes about '{word}', which you track")
        for entry in listed.values():  # most active first
            add(entry.jid, f"{entry.posts} recent post(s)")
        return out
