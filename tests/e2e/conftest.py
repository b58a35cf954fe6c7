# SPDX-License-Identifier: AGPL-3.0-or-later
"""End-to-end fixtures: two federating Prosody servers on loopback and the real
`xmppblog` process attached to alpha's component port."""

from __future__ import annotations

import os
import shutil

import pytest

from ..support.clients import connect
from ..support.component import Component
from ..support.prosody import Prosody, ProsodyNet

DELTA_IP = "127.0.10.5"
#: the ejabberd of the scale-out tests (tests/e2e/test_cluster.py)
ZETA_IP = "127.0.10.8"
#: the two nodes of the ejabberd cluster of tests/e2e/test_cluster.py
ETA_IPS = ("127.0.10.9", "127.0.10.10")
ALPHA_USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
               "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter",
               # IM tests (tests/e2e/test_im.py)
               "kim", "leo", "max", "nina", "olga", "pete", "quinn", "rosa", "sam", "tina",
               "uma", "vince", "wendy", "xavier", "yara", "zoe", "abe", "bea",
               # trust tests (tests/e2e/test_trust.py)
               "amy", "ben", "cleo", "dan", "eve", "fay", "gus", "hal", "ike", "jan",
               # operations tests (tests/e2e/test_operations.py)
               "opal", "otto",
               # accounts and delivery status (tests/e2e/test_accounts.py)
               "ada", "bert", "cora", "dora", "erik", "fern", "gwen",
               # Libervia's CLI (tests/e2e/test_libervia.py)
               "liv", "lou",
               # archives (tests/e2e/test_mam.py)
               "mae", "ned",
               # scale-out, federating with the cluster (tests/e2e/test_cluster.py)
               "zora",
               # the network-wide view: sources of an aggregator (tests/e2e/test_aggregator.py)
               "fia", "gil", "hana",
               "admin"]  # [component] admins of the test component


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def net(tmp_path_factory):
    if shutil.which("prosody") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("prosody must be installed in CI (scripts/install-deps.sh)")
        pytest.skip("prosody is not installed (scripts/install-deps.sh installs it)")
    base = tmp_path_factory.mktemp("prosody")
    servers = [Prosody("alpha", "alpha.test", "127.0.10.2", base, ALPHA_USERS),
               Prosody("beta", "beta.test", "127.0.10.3", base, ["zed", "yolanda", "xena", "ulla", "vera"]),
               # a third server with no xmppblog: its users blog with Prosody's own PEP (but
               # tests/e2e/test_aggregator.py attaches an aggregator to it for a while, for tom)
               Prosody("gamma", "gamma.test", "127.0.10.4", base, ["pat", "tom"])]
    # delta.test is the ejabberd server of the interop tests (started only if they run)
    net = ProsodyNet(base, servers, extra_hosts=f"{DELTA_IP} delta.test blog.delta.test\n"
                                                f"{ZETA_IP} zeta.test blog.zeta.test\n")
    net.start()
    yield net
    net.stop()


@pytest.fixture(scope="session")
def alpha(net):
    return net["alpha"]


@pytest.fixture(scope="session")
def component(net, alpha, tmp_path_factory):
    comp = Component(alpha, tmp_path_factory.mktemp("xmppblog"))
    comp.start()
    yield comp
    rc = comp.stop()
    assert rc == 0, f"xmppblog exited with {rc} on SIGTERM"
    assert "Traceback" not in comp.log_text(), "a traceback was logged:\n" + comp.log_text()[-4000:]


@pytest.fixture(scope="session")
def component_beta(net, tmp_path_factory):
    """xmppblog on beta.test too, for federation tests."""
    comp = Component(net["beta"], tmp_path_factory.mktemp("xmppblog-beta"))
    comp.start()
    yield comp
    assert comp.stop() == 0
    assert "Traceback" not in comp.log_text(), comp.log_text()[-4000:]


@pytest.fixture(scope="session")
def ejabberd(net, tmp_path_factory):
    """ejabberd (Debian package) as host server for delta.test, federating with alpha and beta."""
    from ..support import ejabberd as ej
    ej.require()
    hosts = "".join(f"{s.ip} {s.domain} {s.component}\n" for s in net.servers.values())
    server = ej.Ejabberd("delta.test", DELTA_IP, tmp_path_factory.mktemp("ejabberd"), ["pia", "quentin", "rex"],
                         extra_hosts=hosts)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def component_delta(ejabberd, tmp_path_factory):
    """xmppblog attached to ejabberd."""
    comp = Component(ejabberd, tmp_path_factory.mktemp("xmppblog-delta"))
    comp.start()
    yield comp
    assert comp.stop() == 0
    assert "Traceback" not in comp.log_text(), comp.log_text()[-4000:]


@pytest.fixture
async def clients(net, component, request):
    """`await clients("alice")` connects alice@alpha.test (or 'zed@beta.test')."""
    made = []

    async def make(who: str, presence: bool = True):
        jid = who if "@" in who else f"{who}@alpha.test"
        label = jid.split("@")[1].split(".")[0]
        server = request.getfixturevalue("ejabberd") if label == "delta" else net[label]
        c = await connect(jid, server.ip, presence=presence)
        made.append(c)
        return c

    yield make
    for c in made:
        c.disconnect()


@pytest.fixture(scope="session")
def epsilon(tmp_path_factory):
    """A Prosody of its own (epsilon.test) for tests that kill components or flood them."""
    if shutil.which("prosody") is None:
        pytest.skip("prosody is not installed")
    base = tmp_path_factory.mktemp("epsilon")
    net = ProsodyNet(base, [Prosody("epsilon", "epsilon.test", "127.0.10.6", base, [])])
    net.start()
    yield net["epsilon"]
    net.stop()
