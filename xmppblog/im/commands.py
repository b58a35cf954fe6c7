# SPDX-License-Identifier: AGPL-3.0-or-later
"""The chat bot on the service JID: post, follow and manage by chat (adapter layer).

Any text that is not a command is a post, so a command is recognised only by
its first word, and commands without arguments only when they are the whole
message ("on my way" is a post; "on" resumes delivery). Every answer is one
short, human sentence, or a list cut at a byte budget; refusals say what to
do instead. The bot translates: every decision is the core's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from ..core import errors
from ..core.accounts import Accounts, CodeRefused, shown
from ..core.following import FollowService
from ..core.model import PAGE_COUNT_CAP, AccessModel, Actor, SubState
from ..core.moderation import Moderation
from ..core.posting import PostingService
from ..core.network import NetworkView, Trend
from ..core.roster import RosterService
from ..core.search import SearchService
from ..core.social import SocialService
from ..core.status import DeliveryStatus
from ..protocol import NS_COMPONENT, REPORT_ABUSE
from ..xmpp.component import CHAT, BlogComponent, Request
from . import text as T

log = logging.getLogger(__name__)

HELP = """\
xmppblog — anything you send that is not a command is posted to your microblog.
post TEXT · reply ID TEXT · repost ID · delete ID
follow JID · unfollow JID · following · followers · timeline [N]
track WORD · untrack WORD · tracking · on · off (pause/resume chat delivery)
approve JID · deny JID · requests · protect on|off · remove JID (a follower)
discoverable on|off (may other servers' network-wide search and timelines show your public posts?)
trends · directory [WORD] · suggest (who to follow)
search WORDS ("a phrase", #tag, @user@domain, from:JID) · whois JID · help
block JID · unblock JID · blocked · report JID [why]
status ID (how far your post got) · export (your posts and comments) · delete-account
JID: a user (alice@example.org) or their blog (alice@blog.example.org). ID: the #id under a post
(several posts with the same one: user/ID).
To post text that starts with a command word, start it with "post "."""

#: commands that are commands only when they are the whole message
#: what `status` takes: the #id shown under a post (ours: 6 hex digits), or user/id; another word is a post
_LOOKS_LIKE_ID = re.compile(r"#\S+|[0-9a-f]{6}|\S*[0-9/]\S*")
EXACT = {"help", "following", "followers", "tracking", "on", "off", "requests", "blocked", "export",
         "discoverable", "trends", "directory", "suggest"}
#: commands that take arguments (the first word decides)
WITH_ARGS = {"post", "reply", "repost", "delete", "follow", "unfollow", "track", "untrack",
             "approve", "deny", "remove", "protect", "block", "unblock", "whois", "report", "search",
             "delete-account", "discoverable", "directory"}
MAX_BODY = 8000
_COUNT = re.compile(r"[0-9]{1,6}")


class ChatBot:
    def __init__(self, component: BlogComponent, follows: FollowService, posting: PostingService,
                 social: SocialService, search: SearchService, roster: RosterService, moderation: Moderation,
                 max_payload_bytes: int, accounts: Accounts | None = None, status: DeliveryStatus | None = None,
                 export_base: str | None = None, kept_days: int = 7, network: NetworkView | None = None) -> None:
        """`export_base`: the web address export links start with (None: no HTTP listener, so
        `export` says to ask an admin); `kept_days`: how long delivery counts are kept."""
        self.component = component
        self.follows = follows
        self.posting = posting
        self.social = social
        self.search = search
        self.roster = roster
        self.moderation = moderation
        self.addr = social.addr
        self.max_payload_bytes = max_payload_bytes
        self.accounts = accounts
        self.status = status
        self.export_base = export_base.rstrip("/") if export_base else None
        self.kept_days = kept_days
        self.network = network
        self._commands: dict[str, Callable[[Actor, str], Awaitable[str]]] = {
            "help": self.cmd_help, "post": self.cmd_post, "reply": self.cmd_reply,
            "repost": self.cmd_repost, "delete": self.cmd_delete, "follow": self.cmd_follow,
            "unfollow": self.cmd_unfollow, "following": self.cmd_following,
            "followers": self.cmd_followers, "timeline": self.cmd_timeline, "track": self.cmd_track,
            "untrack": self.cmd_untrack, "tracking": self.cmd_tracking, "on": self.cmd_on,
            "off": self.cmd_off, "approve": self.cmd_approve, "deny": self.cmd_deny,
            "remove": self.cmd_remove,
            "requests": self.cmd_requests, "protect": self.cmd_protect, "block": self.cmd_block,
            "discoverable": self.cmd_discoverable, "trends": self.cmd_trends, "directory": self.cmd_directory,
            "suggest": self.cmd_suggest,
            "unblock": self.cmd_unblock, "blocked": self.cmd_blocked, "whois": self.cmd_whois,
            "report": self.cmd_report, "search": self.cmd_search, "status": self.cmd_status,
            "export": self.cmd_export, "delete-account": self.cmd_delete_account,
        }

    def register(self, component: BlogComponent) -> None:
        component.on_message(CHAT, self.on_message)

    def reply(self, req: Request, body: str) -> None:
        thread = req.xml.find(f"{{{NS_COMPONENT}}}thread")
        inner = f"<body>{escape(body)}</body>"
        if thread is not None and thread.text:
            inner += f"<thread>{escape(thread.text[:256])}</thread>"
        self.component.send_raw_stanza(
            f"<message from={quoteattr(req.to_full)} to={quoteattr(req.sender)} type='chat'>{inner}</message>")

    async def on_message(self, req: Request) -> None:
        mtype = req.xml.get("type", "normal")
        body_el = req.xml.find(f"{{{NS_COMPONENT}}}body")
        if mtype not in ("chat", "normal") or body_el is None:
            return
        body = (body_el.text or "").strip()
        owner_of_target = self.addr.owner_of(req.to)
        if req.to != self.addr.service_jid and owner_of_target != req.actor.jid:
            if owner_of_target is not None:
                self.reply(req, f"This is {owner_of_target}'s microblog. To follow it, add it to your "
                                f"roster or send 'follow {owner_of_target}' to {self.addr.service_jid}.")
            return
        if not self.addr.is_local_user(req.actor.jid):
            self.reply(req, f"This service is for users of {self.addr.users_domain}. Ask your own server "
                            "for a microblog, or follow people here from a XEP-0277 client.")
            return
        if not body:
            self.reply(req, "Nothing to post: send some text (or 'help').")
            return
        if len(body) > MAX_BODY:
            self.reply(req, f"Too long: posts are limited to {MAX_BODY} characters (yours has {len(body)}).")
            return
        word, _, rest = body.partition(" ")
        cmd = word.casefold()
        rest = rest.strip()
        handler = None
        if cmd in EXACT and not rest:
            handler = self._commands[cmd]
        elif cmd == "timeline" and (not rest or _COUNT.fullmatch(rest)):
            handler = self.cmd_timeline
        elif cmd == "status" and (not rest or _LOOKS_LIKE_ID.fullmatch(rest)):
            handler = self.cmd_status  # "status: busy", "status update" or "status update today" stay posts
        elif cmd in WITH_ARGS:
            handler = self._commands[cmd]
        try:
            answer = await handler(req.actor, rest) if handler else await self.cmd_post(req.actor, body)
        except errors.StorageUnavailable:
            answer = "Sorry, the server is having trouble right now; nothing was changed. Try again later."
        except errors.BlogError as exc:
            answer = _humane(exc)
        log.info("chat command: from=%s command=%s", req.actor.jid, cmd if handler else "post")
        self.reply(req, answer)
        if cmd != "delete-account":  # someone leaving is not asked for their presence again
            await self.roster.greet(req.actor.jid)

    # ------------------------------------------------------------ posting

    def _draft(self, text: str, **kw: object) -> object:
        try:
            return T.draft_from_text(text, self.max_payload_bytes, **kw)  # type: ignore[arg-type]
        except errors.PayloadTooBig:
            raise errors.PayloadTooBig(
                f"Too long: posts are limited to about {self.max_payload_bytes // 2} characters.") from None

    async def cmd_post(self, actor: Actor, text: str) -> str:
        if not text:
            return "Usage: post TEXT — or just send the text."
        item_id = await self.posting.post(actor, self._draft(text))
        return f"Posted #{T.short_id(item_id)}"

    async def cmd_reply(self, actor: Actor, rest: str) -> str:
        short, _, text = rest.partition(" ")
        if not short or not text.strip():
            return "Usage: reply ID TEXT — ID is the #id under the post."
        done = await self.posting.reply(actor, short, text.strip(), self._draft)
        return f"Replied to {done.author}'s post #{T.short_id(done.item_id)} (your reply: #{T.short_id(done.new_id)})"

    async def cmd_repost(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: repost ID"
        done = await self.posting.repost(actor, rest, self._draft)
        return f"Reposted {done.author}'s #{T.short_id(done.item_id)} as #{T.short_id(done.new_id)}"

    async def cmd_delete(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: delete ID"
        done = await self.posting.delete(actor, rest)
        return f"Deleted #{T.short_id(done.item_id)}"

    # ------------------------------------------------------------ following

    async def cmd_follow(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: follow JID (e.g. follow alice@example.org). To post this text: post follow …"
        f = await self.follows.follow(actor, rest)
        if f.already:
            return f"You already follow {f.user}."
        if f.state is SubState.PENDING:
            if f.remote:
                return f"Now following {f.user} (their server has not confirmed yet; posts arrive once it does)."
            return f"{f.user}'s blog is protected: your request is waiting for their approval."
        return f"Now following {f.user}"

    async def cmd_unfollow(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: unfollow JID"
        return f"You no longer follow {await self.follows.unfollow(actor, rest)}"

    async def cmd_following(self, actor: Actor, rest: str) -> str:
        people = await self.follows.following(actor)
        if not people:
            return "You follow nobody yet. Try: follow alice@example.org"
        return T.within_budget("You follow:", [u + (" (pending)" if s is SubState.PENDING else "")
                                               for u, s in people], sep=", ")

    async def cmd_followers(self, actor: Actor, rest: str) -> str:
        people = await self.social.followers(actor)
        if not people:
            return "Nobody follows you yet."
        return T.within_budget("Your followers:", [u + (" (waiting for approval)" if s is SubState.PENDING else "")
                                                   for u, s in people], sep=", ")

    async def cmd_timeline(self, actor: Actor, rest: str) -> str:
        n = int(rest) if rest else 20
        posts = await self.social.timeline(actor, n)
        if not posts:
            return "Your timeline is empty: follow someone (follow JID) or post something."
        return T.within_budget("", [T.post_line(p) for p in reversed(posts)],
                               more="… and {n} older (ask for fewer: timeline N)")

    # ------------------------------------------------------------ tracking and delivery

    async def cmd_track(self, actor: Actor, rest: str) -> str:
        word, added = await self.social.track(actor, rest)
        return f"Tracking '{word}': public posts containing it or #{word} will reach you." if added \
            else f"You already track '{word}'."

    async def cmd_untrack(self, actor: Actor, rest: str) -> str:
        word, removed = await self.social.untrack(actor, rest)
        return f"No longer tracking '{word}'." if removed else f"You were not tracking '{word}'."

    async def cmd_tracking(self, actor: Actor, rest: str) -> str:
        words = await self.social.tracking(actor)
        return ("You track: " + ", ".join(words)) if words else "You track no words. Try: track xmpp"

    async def cmd_on(self, actor: Actor, rest: str) -> str:
        await self.social.set_paused(actor, False)
        return "Chat delivery is on: posts will reach you as messages again."

    async def cmd_off(self, actor: Actor, rest: str) -> str:
        await self.social.set_paused(actor, True)
        return "Chat delivery is off; you still follow everyone. Catch up with 'timeline', resume with 'on'."

    # ------------------------------------------------------------ owner

    async def cmd_approve(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: approve JID"
        if await self.social.answer(actor, rest, True):
            return f"Approved: {rest} now follows you."
        return f"There is no pending request from {rest}. See 'requests'."

    async def cmd_deny(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: deny JID"
        if await self.social.answer(actor, rest, False):
            return f"Denied {rest}."
        return f"There is no pending request from {rest}. See 'requests'."

    async def cmd_remove(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: remove JID (stops a follower of your blog). To post this text: post remove …"
        who, removed = await self.social.remove_follower(actor, rest)
        if removed:
            return f"Removed {who}: they no longer follow your blog (to keep them from asking again: block {who})."
        return f"{who} does not follow your blog. See 'followers'."

    async def cmd_requests(self, actor: Actor, rest: str) -> str:
        pending = await self.social.pending_requests(actor)
        if not pending:
            return "No pending follow requests."
        return T.within_budget("Waiting for your approval:", pending, sep=", ", tail=" (approve JID / deny JID)")

    async def cmd_protect(self, actor: Actor, rest: str) -> str:
        if rest.casefold() not in ("on", "off"):
            return "Usage: protect on | protect off"
        model = await self.social.protect(actor, rest.casefold() == "on")
        if model is AccessModel.AUTHORIZE:
            return "Your blog is now protected: new followers need your approval (approve JID / deny JID)."
        return "Your blog is public again: anyone can follow it and read all its posts."

    async def cmd_discoverable(self, actor: Actor, rest: str) -> str:
        choice = rest.strip().casefold()
        if choice not in ("", "on", "off"):
            return "Usage: discoverable on | discoverable off"
        if not choice:
            on = await self.social.discoverable(actor)
            return (f"Your public posts are {'' if on else 'not '}discoverable: other servers' network-wide "
                    f"search and timelines {'may' if on else 'do not'} show them. "
                    "Change it with 'discoverable on' or 'discoverable off'.")
        if await self.social.discoverable(actor, choice == "on"):
            return ("Your public posts from now on are discoverable: other servers' network-wide search and "
                    "timelines may show them (earlier posts stay out). 'discoverable off' withdraws them all.")
        return ("Your posts are not discoverable: every earlier one is withdrawn from this server's firehose, "
                "and so from the network-wide indexes that follow it.")

    async def cmd_trends(self, actor: Actor, rest: str) -> str:
        if self.network is None:
            return "Trends are not available on this server."
        hour, day = await self.network.trends(5)
        if not hour and not day:
            return "No hashtags in the last day."

        def line(trends: list[Trend]) -> str:
            return ", ".join(f"#{t.tag} ({t.now} author(s), {t.before} before)" for t in trends) or "none"
        return f"Rising in the last hour: {line(hour)}\nRising today: {line(day)}"

    async def cmd_directory(self, actor: Actor, rest: str) -> str:
        if self.network is None:
            return "The directory is not available on this server."
        listed = await self.network.directory(rest)
        if not listed:
            return f"Nobody discoverable matches '{rest}'." if rest else "Nobody is discoverable yet."
        lines = [f"{e.jid} ({e.server}, {e.posts} post(s))" for e in listed[:20]]
        return T.within_budget(f"{len(listed)} discoverable user(s), most active first:", lines)

    async def cmd_suggest(self, actor: Actor, rest: str) -> str:
        if self.network is None:
            return "Suggestions are not available on this server."
        found = await self.network.suggestions(actor.jid)
        if not found:
            return "No suggestions yet: nobody else is discoverable."
        return T.within_budget("You might follow (follow JID):", [f"{s.jid}: {s.why}" for s in found])

    async def cmd_block(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: block JID"
        who, added = await self.social.block(actor, rest)
        return f"Blocked {who}: you will see nothing from them." if added else f"{who} was already blocked."

    async def cmd_unblock(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: unblock JID"
        [(who, removed)] = await self.social.unblock(actor, rest)
        return f"Unblocked {who}." if removed else f"{who} was not blocked."

    async def cmd_blocked(self, actor: Actor, rest: str) -> str:
        who = await self.social.blocked(actor)
        return T.within_budget("You block:", who, sep=", ") if who else "You block nobody."

    async def cmd_report(self, actor: Actor, rest: str) -> str:
        target, _, why = rest.partition(" ")
        if not target:
            return "Usage: report JID [why] — tells the admins of this server about abuse."
        who = await self.moderation.report(actor, target, REPORT_ABUSE, why.strip())
        return f"Reported {who} to the administrators. To stop seeing them: block {who}"

    async def cmd_search(self, actor: Actor, rest: str) -> str:
        found = await self.search.search(actor, rest, limit=10)
        if not found.posts:
            return f"No public post matches {rest}."
        lines = [f"{p.item.published:%Y-%m-%d %H:%M} " + T.post_line(p) for p in found.posts]
        return T.within_budget(f"{found.total_text} public post(s) match, newest first:", lines)

    async def cmd_whois(self, actor: Actor, rest: str) -> str:
        if not rest or " " in rest:
            return "Usage: whois JID"
        w = await self.social.whois(actor, rest)
        parts = [f"{w.user}: blog {w.blog}"]
        if w.followers is not None:
            parts += [f"{w.posts} post(s)" if w.posts is not None else f"over {PAGE_COUNT_CAP:,} posts",
                      f"{w.followers} follower(s)"]
        if w.access and w.access is not AccessModel.OPEN:
            parts.append(f"{w.access.value} blog")
        if w.latest is not None:
            parts.append("latest: " + T.clip(T.summary(w.latest.payload)) + f" (#{T.short_id(w.latest.item_id)})")
        return " · ".join(parts)

    async def cmd_help(self, actor: Actor, rest: str) -> str:
        return HELP

    # ------------------------------------------------------------ status and accounts

    async def cmd_status(self, actor: Actor, rest: str) -> str:
        if not rest:
            return "Usage: status ID — ID is the #id under your post. To post this text: post status"
        if self.status is None:
            return "Delivery status is not available on this server."
        rest = rest.removeprefix("#")
        st = await self.status.of_post(actor, rest)
        return T.delivery_status(T.short_id(st.item_id), st, datetime.now(UTC), self.kept_days)

    async def cmd_export(self, actor: Actor, rest: str) -> str:
        # An Atom file behind a link, not the feed in chat messages: a blog can be megabytes
        # (a stanza holds far less, THREATS.md fact 6), and a file is what a feed reader, a
        # browser or another server reads back; chat clients would show XML in pieces.
        if self.accounts is None or self.export_base is None:
            return ("Export by chat needs this server's web address, which is not set up here; an "
                    f"administrator can export your posts for you (xmppblog export {actor.jid}).")
        link, facts = await self.accounts.export_link(actor)
        return (f"Your {facts.posts} post(s) and {facts.comments} comment(s) as an Atom feed: "
                f"{self.export_base}/export/{link.code} — the link works until "
                f"{T.at(link.expires, datetime.now(UTC))} for whoever has it, so keep it to yourself.")

    async def cmd_delete_account(self, actor: Actor, rest: str) -> str:
        if self.accounts is None:
            return "Deleting an account by chat is not available on this server; ask its administrators."
        if not rest:
            code, f = await self.accounts.ask_delete(actor)
            minutes = round((code.expires - datetime.now(UTC)).total_seconds() / 60)
            told = f"your {f.followers} follower(s)" + (f" (on {f.servers} other server(s))" if f.servers else "")
            return (f"This deletes your blog for good: your {f.posts} post(s) and {f.comments} comment(s) are "
                    f"retracted here and wherever they were sent, {told} are told it is gone, you stop "
                    f"following {f.following} blog(s), and nothing is left in search, the public timeline, "
                    "pages or feeds. It cannot be undone (send 'export' first to keep a copy). To go ahead, "
                    f"send within {minutes} minutes: delete-account {shown(code.code)}")
        try:
            done = await self.accounts.delete(actor, rest)
        except CodeRefused as exc:
            again = "send 'delete-account' for a new code."
            return {"none": "Nothing is waiting for a confirmation: send 'delete-account' first.",
                    "expired": "That code has expired; nothing was deleted. To delete your account, " + again,
                    "void": "Wrong code too many times; nothing was deleted and that code is void: " + again,
                    }.get(exc.reason, "Wrong code; nothing was deleted. Check it, or " + again)
        f = done.facts
        return (f"Your account is deleted: {f.posts} post(s) and {f.comments} comment(s) retracted, "
                f"{f.followers} follower(s) told, {f.following} follow(s) ended. Goodbye!")


_PLAIN_WORD = re.compile(r"^[a-z]+\b(?![@.])")


def _humane(exc: errors.BlogError) -> str:
    """A refusal as a sentence: capitalised (unless it starts with a JID), with a full stop."""
    text = exc.text or "That did not work."
    if _PLAIN_WORD.match(text):
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."
