# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #14 end to end: `status ID`, exports and account deletion through real Prosody
servers, with followers on a second server (beta.test, running its own xmppblog)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

from ..support import ports
from .test_im import chat_follow, chat_from, greeted, posted_id
from .test_pubsub import ATOM, NODE, PS, blog
from .test_spamguard import run_command

EV = f"{{{PS}#event}}"


async def cli(component, *args: str) -> subprocess.CompletedProcess:
    """`xmppblog -c CONFIG ARGS…` beside the running server (off the event loop: the clients keep reading)."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "xmppblog", "-c", str(component.config), *args],
        capture_output=True, text=True, timeout=120)


def get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def poll(client, command: str, done, tries: int = 50) -> str:
    """Ask the bot again until the answer satisfies `done` (deliveries are counted as they happen)."""
    answer = ""
    for _ in range(tries):
        answer = await client.say(command)
        if done(answer):
            break
        await asyncio.sleep(0.2)
    return answer


def entries(feed_text: str) -> list[str]:
    """The titles of an Atom feed's entries, in order."""
    feed = ET.fromstring(feed_text.encode())
    assert feed.tag == f"{{{ATOM}}}feed"
    return [e.findtext(f"{{{ATOM}}}title") or "" for e in feed.findall(f"{{{ATOM}}}entry")]


def published(user: str, text: str):
    """A XEP-0060 event from `user`'s blog carrying a post with `text`."""
    return lambda m: (m["from"].bare == blog(user) and any(
        text in "".join(i.itertext()) for i in m.xml.iter(f"{EV}item")))


def retracted(user: str, item_id: str):
    return lambda m: (m["from"].bare == blog(user)
                      and m.xml.find(f".//{EV}retract[@id='{item_id}']") is not None)


def deleted(user: str):
    return lambda m: m["from"].bare == blog(user) and m.xml.find(f".//{EV}delete[@node='{NODE}']") is not None


def item_id_of(event) -> str:
    return next(event.xml.iter(f"{EV}item")).get("id")


async def test_status_tells_the_author_how_far_a_post_got_here_and_on_another_server(
        clients, component, component_beta):
    ada, bert, ulla = await clients("ada"), await clients("bert"), await clients("ulla@beta.test")
    await greeted(bert)
    await chat_follow(bert, "ada")                   # a follower here, by chat
    await greeted(ulla)
    assert await ulla.say("follow ada@alpha.test") == "Now following ada@alpha.test"  # one on beta
    component.wait_log("subscribed: service=ada@blog.alpha.test node=urn:xmpp:microblog:0 jid=blog.beta.test")
    short = posted_id(await ada.say("post hello across two servers"))
    assert await bert.inbox.wait(chat_from("ada", "hello across two servers"))
    assert await ulla.inbox.wait(lambda m: "hello across two servers" in (m["body"] or ""))
    answer = await poll(ada, f"status {short}", lambda a: "1 of 1 server" in a)
    assert answer == f"#{short} reached 1 person here, 1 of 1 server."

    # nobody else learns anything: someone else's post answers like one that does not exist
    assert await bert.say(f"status {short}") == f"No such post: {short}."
    assert await bert.say("status #zzzzzz") == "No such post: zzzzzz."
    assert (await bert.say("status update")).startswith("Posted #"), "a word that is no id is a post"
    assert (await ada.say("status")).startswith("Usage: status ID")
    assert (await ada.say("status update: all fine")).startswith("Posted #"), "a post may start with 'status'"
    # admins may ask about any post, and see every other server's share
    admin = await clients("admin")
    assert (await admin.say(f"status ada/{short}")).startswith(f"#{short} reached 1 person here")
    status, note = await run_command(admin, "xmppblog#deliveries")
    assert status == "completed" and re.search(r"blog\.beta\.test: \w+, [1-9]\d* delivered", note), note
    stats = await cli(component, "stats")
    assert stats.returncode == 0 and re.search(r"blog\.beta\.test: \w+, [1-9]\d* delivered", stats.stdout), \
        stats.stdout + stats.stderr


async def test_export_by_chat_link_and_by_the_command_line(clients, component, alpha):
    cora = await clients("cora")
    first = posted_id(await cora.say("post cora's first post"))
    await cora.say("post cora's second post")
    assert (await cora.say(f"reply {first} cora adds a comment")).startswith("Replied to cora@alpha.test's post")
    answer = await cora.say("export")
    assert answer.startswith("Your 2 post(s) and 1 comment(s) as an Atom feed: "), answer
    url = re.search(r"(http://\S+/export/\S+)", answer).group(1)
    assert url.startswith(f"http://{alpha.ip}:{ports.HTTP}/export/")
    status, headers, body = await asyncio.to_thread(get, url)
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    assert "attachment" in headers["Content-Disposition"] and headers["Cache-Control"] == "no-store"
    titles = entries(body)
    assert titles == ["cora's second post", "cora's first post", "cora adds a comment"], titles
    assert (await asyncio.to_thread(get, url[:-3] + "abc"))[0] == 404, "a token is not guessable"

    out = await cli(component, "export", "cora", "-o", str(component.workdir / "cora.atom"))
    assert out.returncode == 0, out.stderr
    assert "exported cora@alpha.test: 2 post(s) and 1 comment(s) to " in out.stderr
    assert entries((component.workdir / "cora.atom").read_text()) == titles
    out = await cli(component, "export", "cora@alpha.test")
    assert out.returncode == 0 and entries(out.stdout) == titles, "Atom on stdout, nothing else"
    for user, why in (("nobody", "nobody@alpha.test has no blog, no comments and follows nobody here"),
                      ("ulla@beta.test", "ulla@beta.test is not a user of this server (alpha.test)")):
        out = await cli(component, "export", user)
        assert out.returncode == 1 and out.stdout == "" and f"xmppblog: export: {why}" in out.stderr, out.stderr
    gwen = await clients("gwen")
    assert await gwen.say("export") == "You have no posts or comments here yet."


async def test_delete_account_by_chat_retracts_everywhere_and_leaves_nothing(clients, component, component_beta,
                                                                             alpha):
    dora, erik, ulla = await clients("dora"), await clients("erik"), await clients("ulla@beta.test")
    await greeted(erik)
    await chat_follow(erik, "dora")                  # a follower here
    await dora.say("post dora was here")
    await ulla.pubsub.subscribe(blog("dora"), NODE)   # a reader on beta, with a XEP-0060 client
    await greeted(ulla)
    assert await ulla.say("follow dora@alpha.test") == "Now following dora@alpha.test"  # and beta's xmppblog
    component.wait_log("subscribed: service=dora@blog.alpha.test node=urn:xmpp:microblog:0 jid=blog.beta.test")
    await dora.say("post dora's quokkaunicorn post #farewell")
    ids = [item_id_of(await ulla.inbox.wait(published("dora", "quokkaunicorn")))]
    assert "dora@alpha.test: dora's quokkaunicorn post" in await poll(
        ulla, "timeline 5", lambda t: "quokkaunicorn" in t)
    assert "quokkaunicorn" in (await asyncio.to_thread(get, f"http://{alpha.ip}:{ports.HTTP}/api/timeline"))[2]

    ask = await dora.say("delete-account")
    assert ask.startswith("This deletes your blog for good: your 2 post(s) and 0 comment(s) are retracted"), ask
    # ulla@beta.test and blog.beta.test: two domains (servers are counted by domain)
    assert "your 3 follower(s) (on 2 other server(s))" in ask and "send 'export' first" in ask, ask
    code = re.search(r"delete-account ([A-Z0-9]{4}-[A-Z0-9]{4})$", ask).group(1)
    assert await dora.say("delete-account AAAA-AAAA") == (
        "Wrong code; nothing was deleted. Check it, or send 'delete-account' for a new code.")
    assert await erik.say(f"delete-account {code}") == (
        "Nothing is waiting for a confirmation: send 'delete-account' first."), "a code is its user's only"
    done = await dora.say(f"delete-account {code.lower()}")
    assert done.startswith("Your account is deleted: 2 post(s) and 0 comment(s) retracted"), done

    # the reader on beta gets every retraction, then the node's deletion (XEP-0060 §8.4)
    for item_id in ids:
        assert await ulla.inbox.wait(retracted("dora", item_id)), f"no retraction of {item_id} on beta"
    assert await ulla.inbox.wait(deleted("dora")), "no node deletion notice on beta"
    # beta's xmppblog forgets its copy: its users' timelines and search lose the posts
    component_beta.wait_log("remote node dropped with its cache: service=dora@blog.alpha.test")
    assert "quokkaunicorn" not in await ulla.say("timeline 5")
    # the follower here loses the blog JID from their roster
    for _ in range(50):
        if erik.client_roster[blog("dora")]["subscription"] == "none":
            break
        await asyncio.sleep(0.1)
    assert erik.client_roster[blog("dora")]["subscription"] == "none"
    # nothing is left in search, the public timeline, pages or feeds
    assert (await erik.say("search quokkaunicorn")).startswith("No public post matches")
    base = f"http://{alpha.ip}:{ports.HTTP}"
    for path in ("/api/timeline", "/feeds/timeline.atom", "/api/search?q=quokkaunicorn", "/u/dora",
                 "/feeds/users/dora.atom", "/feeds/tags/farewell.atom", "/api/users", "/"):
        assert "quokkaunicorn" not in (await asyncio.to_thread(get, base + path))[2], path
    assert await dora.say(f"status {ids[0][:6]}") == f"No such post: {ids[0][:6]}."


async def test_delete_user_by_the_command_line_while_the_server_runs(clients, component, component_beta):
    fern, ulla = await clients("fern"), await clients("ulla@beta.test")
    await fern.say("post fern's first")
    await ulla.pubsub.subscribe(blog("fern"), NODE)
    await fern.say("post fern's second")
    second = item_id_of(await ulla.inbox.wait(published("fern", "fern's second")))
    out = await cli(component, "delete-user", "fern@alpha.test")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("deleted fern@alpha.test: 2 post(s) and 0 comment(s) retracted, 1 follower(s) "
                                 "told (on 1 other server(s))"), out.stdout
    assert "a running xmppblog sends them within a few seconds" in out.stdout
    # the running server picked up what the command line queued, and beta's reader heard of it
    assert await ulla.inbox.wait(retracted("fern", second)), "no retraction on beta"
    assert await ulla.inbox.wait(deleted("fern")), "no node deletion notice on beta"
    assert (await ulla.error_of(ulla.pubsub.get_items(blog("fern"), NODE)))[1] == "item-not-found"
    for user, why in (("fern", "fern@alpha.test has no blog, no comments and follows nobody here"),
                      ("ulla@beta.test", "ulla@beta.test is not a user of this server (alpha.test)")):
        out = await cli(component, "delete-user", user)
        assert out.returncode == 1 and f"xmppblog: delete-user: {why}" in out.stderr, out.stderr
