# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #15: a real XEP-0277 client nobody here wrote — Libervia 0.9's command-line
client (Debian's `libervia-cli`) — against the suite's Prosody and xmppblog.

One Libervia backend for the module (tests/support/libervia.py: private D-Bus bus,
`Force server`/`Force port`, no TLS), two profiles: liv (a blog owner) and lou (a reader
who comments). Each test publishes the posts it needs, with ids of its own, so each
failure is visible on its own. `-C` (no cache) makes Libervia ask the server every time.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from ..support import libervia as lv_support
from ..support import ports
from ..support.prosody import PASSWORD

BLOG = "liv@blog.alpha.test"
NODE = "urn:xmpp:microblog:0"


@pytest.fixture(scope="module")
def li(component, alpha, tmp_path_factory, record_testsuite_property):
    problem = lv_support.unavailable()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"libervia-cli must be installed in CI (scripts/setup.sh): {problem}")
        pytest.skip(problem)
    client = lv_support.Libervia(tmp_path_factory.mktemp("libervia"))
    client.start()
    try:
        # about 3 s on 2 cores; kept in --junitxml reports to watch it
        record_testsuite_property("libervia_backend_start_seconds", f"{client.start_seconds:.1f}")
        for user in ("liv", "lou"):
            client.create_profile(user, f"{user}@{alpha.domain}", PASSWORD, alpha.ip, ports.C2S)
        yield client
    finally:
        client.stop()


def ok(result: lv_support.Result) -> lv_support.Result:
    assert result.rc == 0, str(result)
    return result


def publish(li, body: str, *args: str, profile: str = "liv", service: str = BLOG) -> str:
    """`li blog set` with `body` on stdin; returns the item id Libervia reports."""
    out = ok(li.run("blog", "set", "-p", profile, "-s", service, *args, input=body)).stdout
    assert "Item published with ID " in out, out
    return out.rsplit("Item published with ID ", 1)[1].split()[0]


def blog_get(li, *args: str, profile: str = "liv", service: str = BLOG) -> tuple[list[dict], dict]:
    """`li blog get -O json -C`: the items (Libervia's microblog data) and the metadata."""
    items, meta = json.loads(ok(li.run("blog", "get", "-p", profile, "-s", service, "-O", "json", "-C",
                                       *args)).stdout)
    return items, meta


def disco(li, jid: str, *args: str) -> dict:
    return json.loads(ok(li.run("info", "disco", "-p", "liv", "-C", "-O", "json", *args, jid)).stdout)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_publish_with_title_and_tags(li):
    item = uid("lv-tags")
    assert publish(li, "Published from Libervia", "-i", item, "-T", "A title from Libervia",
                   "-t", "libervia", "-t", "xmpp") == item


def test_read_back_title_tags_and_text(li):
    item = publish(li, "Read back, with a title", "-T", "Readable title", "-t", "readback", "-t", "clients")
    items, meta = blog_get(li, "-i", item)
    assert [i["id"] for i in items] == [item]
    post = items[0]
    assert post["title"] == "Readable title"
    assert sorted(post["tags"]) == ["clients", "readback"]
    assert post["content"] == "Read back, with a title"
    assert post["author_jid"] == "liv@alpha.test" and post["author_jid_verified"]
    # the replies link Libervia follows for comments: the post's comments node on the blog JID
    assert post["comments"][0]["service"] == BLOG
    assert post["comments"][0]["node"] == f"{NODE}:comments/{item}"
    assert meta["node"] == NODE


def test_rsm_paging(li):
    mine = [publish(li, f"Page test {n}", "-i", uid(f"lv-page{n}")) for n in range(3)]
    seen: list[str] = []
    after: list[str] = []
    for _ in range(50):
        items, meta = blog_get(li, "-m", "2", *after)
        assert 1 <= len(items) <= 2, meta
        assert meta["rsm"]["count"] >= 3
        seen += [i["id"] for i in items]
        assert meta["rsm"]["last"] == items[-1]["id"]
        if meta.get("complete") or len(seen) >= meta["rsm"]["count"]:
            break
        after = ["-a", meta["rsm"]["last"]]
    assert len(seen) == len(set(seen)) == meta["rsm"]["count"], "each post once over all pages"
    assert seen[:3] == mine[::-1], "newest first: the three posts just published open the first pages"


def test_first_comment_on_fresh_post(li):
    """As Libervia does it: publish with comments enabled, then comment on the node named by
    the post's replies link, before anyone else commented there."""
    item = publish(li, "Comment on me", "-i", uid("lv-fresh"), "-C")
    comments_node = f"{NODE}:comments/{item}"
    comment = publish(li, "The very first comment", "-n", comments_node, profile="lou")
    items, _ = blog_get(li, "-n", comments_node)
    assert [(c["id"], c["content"], c["author_jid"]) for c in items] == \
        [(comment, "The very first comment", "lou@alpha.test")]


def test_empty_comments_list(li):
    item = publish(li, "Nobody commented yet", "-i", uid("lv-quiet"))
    items, meta = blog_get(li, "-n", f"{NODE}:comments/{item}", profile="lou")
    assert items == [] and meta["node"] == f"{NODE}:comments/{item}"


def test_edit_keeps_id_and_published(li):
    item = publish(li, "Before the edit", "-i", uid("lv-edit"), "-T", "Old title")
    (before,), _ = blog_get(li, "-i", item)
    assert publish(li, "After the edit", "-i", item, "-T", "New title") == item
    (after,), _ = blog_get(li, "-i", item)
    assert (after["title"], after["content"]) == ("New title", "After the edit")
    assert after["published"] == before["published"] and after["updated"] >= before["updated"]
    items, _ = blog_get(li, "-m", "20")
    assert [i["id"] for i in items].count(item) == 1, "an edit replaces the post"


def test_retract(li):
    item = publish(li, "Soon gone", "-i", uid("lv-gone"))
    assert f"item {item} has been deleted" in ok(li.run(
        "pubsub", "delete", "-p", "liv", "-s", BLOG, "-n", NODE, "-i", item, "-f")).stdout
    gone = li.run("blog", "get", "-p", "liv", "-s", BLOG, "-C", "-O", "json", "-i", item)
    assert gone.rc != 0 and "NotFound" in gone.stderr, str(gone)  # item-not-found
    items, _ = blog_get(li, "-m", "20")
    assert item not in [i["id"] for i in items]


def test_disco_service(li, component):
    info = disco(li, component.server.component)
    assert ["pubsub", "service", "xmppblog"] in info["identities"]
    assert "http://jabber.org/protocol/pubsub" in info["features"]
    # the service's form reached Libervia with its fields typed (wokkel checks them)
    fields = {f["var"]: (f["type"], values) for f, values in info["extensions"]["urn:xmppblog:0"]}
    assert fields["users_domain"] == ("text-single", ["alpha.test"])
    assert fields["firehose"] == ("text-single", ["urn:xmppblog:firehose:0"])
    listed = [i[:2] for i in info["items"]]
    assert [component.server.component, NODE] in listed, "the public timeline"
    assert [component.server.component, "urn:xmppblog:firehose:0"] in listed, "the firehose (issue #17)"


def test_disco_blog_jid(li):
    publish(li, "So that the blog exists", "-i", uid("lv-disco"))
    info = disco(li, BLOG)
    assert [i[:2] for i in info["identities"]] == [["pubsub", "pep"]]
    assert {"http://jabber.org/protocol/pubsub", "urn:xmpp:mam:2"} <= set(info["features"])
    assert [BLOG, NODE] in [i[:2] for i in info["items"]]


def test_disco_node(li):
    item = publish(li, "A node to discover", "-i", uid("lv-node"))
    for node in (NODE, f"{NODE}:comments/{item}"):
        info = disco(li, BLOG, "-n", node)
        assert [i[:2] for i in info["identities"]] == [["pubsub", "leaf"]], node
        meta = dict((f["var"], values) for f, values in
                    info["extensions"]["http://jabber.org/protocol/pubsub#meta-data"])
        # XEP-0472 profiles: the blog is the microblog profile, its comments the base one
        profile = "urn:xmpp:microblog:0" if node == NODE else "urn:xmpp:pubsub-social-feed:1"
        assert meta["pubsub#type"] == [profile], node
        assert meta["pubsub#max_items"] == ["max"] or node != NODE


def test_mam_fulltext(li):
    """A MAM (XEP-0313) query on the blog node with Libervia's full-text filter (the `fulltext`
    field of the MAM form). Libervia 0.9's `li blog get -f fulltext WORD` never sends it (the
    CLI names the filter `filter_fulltext`, the backend reads `mam_filter_fulltext`), so the
    query goes through the backend's own microblog method, as Libervia's other frontends call
    it."""
    word = uuid.uuid4().hex[:10]
    hit = publish(li, f"Find the word {word} in here", "-i", uid("lv-mam"))
    publish(li, "Nothing to find in this one", "-i", uid("lv-mam"))
    info = disco(li, BLOG)
    assert {"urn:xmpp:mam:2", "urn:xmpp:fulltext:0"} <= set(info["features"])
    extra = json.dumps({"mam_filter_fulltext": word, "rsm_max": "10"})
    result = ok(li.run("debug", "bridge", "method", "-p", "liv", "mbGet", repr(BLOG), repr(NODE),
                       "-1", "[]", repr(extra), repr("liv")))
    data = json.loads(result.stdout)
    assert [i["id"] for i in data["items"]] == [hit], data
    assert data["complete"] is True and data["rsm"]["count"] == 1, data


def test_attachments_noticed_and_reactions(li):
    """XEP-0470 as Libervia does it: `blog set` creates the post's attachments node (before the
    post, with the blog's configuration and publish_model=open: `conflict`, tolerated), then a
    reader marks the post noticed and reacts, each reader's one item under their own JID."""
    item = publish(li, "React to this", "-i", uid("lv-react"))
    assert "urn:xmpp:pubsub-attachments:1" in disco(li, BLOG)["features"]
    for profile, args in (("lou", ("-N", "-r", "👍")), ("liv", ("-r", "🎉"))):
        ok(li.run("blog", "attachments", "set", "-p", profile, "-s", BLOG, "-i", item, *args))
    ok(li.run("blog", "attachments", "set", "-p", "lou", "-s", BLOG, "-i", item, "-r", "❤"))  # an update
    got = json.loads(ok(li.run("blog", "attachments", "get", "-p", "liv", "-s", BLOG, "-i", item,
                                "-O", "json")).stdout)
    by = {a["from"]: a for a in got}
    assert sorted(by) == ["liv@alpha.test", "lou@alpha.test"], got
    assert by["lou@alpha.test"]["noticed"]["noticed"] is True, got
    assert sorted(by["lou@alpha.test"]["reactions"]["reactions"]) == ["❤", "👍"], got
    assert by["liv@alpha.test"]["reactions"]["reactions"] == ["🎉"], got
    assert "noticed" not in by["liv@alpha.test"], got
