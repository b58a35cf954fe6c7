# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one consent rule for network-wide indexes: which posts may leave this server's own
view (core layer, stdlib only).

Each user chooses whether their public posts may be taken into other servers'
indexes (aggregators, network search, the firehose): `discoverable on|off`, by
chat or XEP-0050, stored on their blog node (`NodeConfig.discoverable`; None
means the admin's `[firehose] default_discoverable`). The choice rides inside
each entry, under its signature (the codec writes `<discoverable
xmlns='urn:xmppblog:0'/>`), so nobody can claim a consent that was not given:

- a new post carries it when its author consents now and the post is public;
- an edit keeps what the post had, and loses it when the author no longer
  consents (`on` applies to posts from then on, never to earlier ones);
- comments, attachments and protected posts never carry it.

Turning it off, or protecting the blog, withdraws every earlier post from the
firehose (core/firehose.py), hence from every aggregator that follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Node
from .visibility import is_public

#: the node on the service JID that carries every discoverable post (XEP-0060, open to all)
NS_FIREHOSE = "urn:xmppblog:firehose:0"


@dataclass(frozen=True, slots=True)
class Discovery:
    #: `[firehose] default_discoverable`: the choice of users who never made one
    default: bool = False

    def consents(self, blog: Node) -> bool:
        """Whether the owner of `blog` lets their public posts into network-wide indexes now."""
        return self.default if blog.config.discoverable is None else blog.config.discoverable

    def carries(self, node: Node, access: Node, before: bool | None) -> bool:
        """Whether a post stored now on `node` (under `access`'s rules) carries the consent flag.

        Args:
            before: for an edit, whether the post carried it; None for a new post.
        """
        if node.remote or node.ref.of_post:  # a cached remote post, a comment, an attachment
            return False
        if not is_public(access) or not self.consents(access):
            return False
        return before is not False
