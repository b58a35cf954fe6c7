# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one consent rule for network-wide indexes: which posts may leave this server's own
view (core layer, stdlib only).

Each user chooses whether their public posts may be taken into other servers'
indexes (aggregators, network search, the firehose): `discoverable on|off`, by
chat or XEP-0050, stored on their blog node (`NodeConfig.discoverable`; None
means the admin's `[firehose] default_discoverable`). The choice rides inside
each entry, under its signature (the codec writes `<discoverable
xmlns='urn:xmppblog:0'/>`), so nobody can claim a consent that was not given:

- a new post carries it when the blog's owner, and its author if someone else
  (a publisher affiliate), consent now and the post is public; a repost only if
  the post it quotes carries it;
- an edit keeps what the post had, and loses it when they no longer consent;
  a post from before the last withdrawal never carries it again (`on` applies
  to posts from then on, never to earlier ones);
- comments, attachments and protected posts never carry it.

Turning it off, or protecting the blog, withdraws every earlier post from the
firehose (core/firehose.py), hence from every aggregator that follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import NS_FIREHOSE, Item, Node
from .visibility import is_public

__all__ = ["NS_FIREHOSE", "Discovery"]


@dataclass(frozen=True, slots=True)
class Discovery:
    #: `[firehose] default_discoverable`: the choice of users who never made one
    default: bool = False

    def consents(self, blog: Node) -> bool:
        """Whether the owner of `blog` lets their public posts into network-wide indexes now."""
        return self.default if blog.config.discoverable is None else blog.config.discoverable

    def carries(self, node: Node, access: Node, author_blog: Node | None, before: Item | None,
                before_carried: bool, quoted: bool | None = None) -> bool:
        """Whether a post stored now on `node` (under `access`'s rules) carries the consent flag.

        Args:
            author_blog: the blog of the post's author when that is not the blog's owner (a
                publisher affiliate): they must consent too. None: the owner wrote it, or the
                author has no blog yet (then the default decides).
            before: for an edit, the post as it was; None for a new post.
            before_carried: whether `before` carried the flag.
            quoted: for a repost, whether the post it quotes carried the flag (a repost never
                takes someone's words further than they let them go); None otherwise.
        """
        if node.remote or node.ref.of_post:  # a cached remote post, a comment, an attachment
            return False
        if not is_public(access) or not self.consents(access) or quoted is False:
            return False
        if author_blog is not None and not self.consents(author_blog):
            return False
        if before is None:
            return True
        withdrawn = [b.config.consent_withdrawn_at for b in (access, author_blog) if b is not None]
        return before_carried and all(at is None or before.published > at for at in withdrawn)

    def withdraws(self, before: Node, after: Node) -> bool:
        """Whether a change of a blog's settings from `before` to `after` withdraws consent: its
        owner no longer consents, or it is no longer public."""
        was = self.consents(before) and is_public(before)
        return was and not (self.consents(after) and is_public(after))
