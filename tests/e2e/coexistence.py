# SPDX-License-Identifier: AGPL-3.0-or-later
"""The coexistence scenario, run inside a private network namespace by
tests/e2e/test_coexistence.py (`unshare --net`; it needs root).

An admin's own Prosody already serves the default XMPP and HTTP ports (5222,
5269, 5347, 5280, 5281, 5443) on 0.0.0.0. Beside it: the demo
(scripts/demo.sh) starts, a user follows and posts through it from an ordinary
client, its web page shows the post, and part of the test suite (federation
between Prosody servers, xmppblog on ejabberd) passes. Afterwards the admin's
Prosody still has every port and still serves its users. Exit status 0 when all
of that held; otherwise the first broken expectation on stderr.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..support.clients import connect
from ..support.prosody import port_open

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORTS = (5222, 5269, 5347, 5280, 5281, 5443)
#: the tests that run beside the admin's Prosody: federation, and xmppblog on ejabberd
SUITE_SAMPLE = ("tests/e2e/test_federation.py::test_follow_remote_user_one_delivery_per_server",
                "tests/e2e/test_ejabberd.py::test_xmppblog_on_ejabberd_and_federation_with_prosody")

ADMINS_PROSODY = """\
-- The admin's own Prosody, on every default port and every interface.
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "*" }}
c2s_ports = {{ 5222 }}
s2s_ports = {{ 5269 }}
component_interfaces = {{ "*" }}
component_ports = {{ 5347 }}
http_interfaces = {{ "*" }}
http_ports = {{ 5280 }}
https_interfaces = {{ "*" }}
https_ports = {{ 5281, 5443 }}
https_ssl = {{ certificate = "{dir}/cert.pem"; key = "{dir}/key.pem" }}
use_ipv6 = false
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
modules_enabled = {{ "saslauth"; "roster"; "disco"; "ping"; "bosh" }}
VirtualHost "example.local"
Component "gateway.example.local"
	component_secret = "admins-own"
"""


def fail(message: str) -> None:
    print(f"coexistence: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def self_signed(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))


def wildcard_ports_held() -> list[int]:
    """The default ports answering on an address only a 0.0.0.0 listener covers."""
    return [p for p in DEFAULT_PORTS if port_open("127.0.0.9", p) and port_open("127.0.0.1", p)]


def start_admins_prosody(directory: Path) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    (directory / "data").mkdir()
    self_signed(directory)
    cfg = directory / "prosody.cfg.lua"
    cfg.write_text(ADMINS_PROSODY.format(dir=directory))
    subprocess.run(["prosodyctl", "--config", str(cfg), "register", "owner", "example.local", "password"],
                   check=True, capture_output=True, timeout=60)
    proc = subprocess.Popen(["prosody", "--config", str(cfg), "-F"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 20
    while wildcard_ports_held() != list(DEFAULT_PORTS):
        if proc.poll() is not None or time.monotonic() > end:
            fail(f"the admin's Prosody did not take every default port: {wildcard_ports_held()}; "
                 + (directory / "prosody.log").read_text()[-2000:])
        time.sleep(0.1)
    return proc


async def admins_prosody_serves() -> None:
    owner = await connect("owner@example.local", "127.0.0.1", 5222)
    await owner.plugin["xep_0199"].ping("example.local", timeout=10)
    owner.disconnect()
    if wildcard_ports_held() != list(DEFAULT_PORTS):
        fail(f"the admin's Prosody lost default ports: holds only {wildcard_ports_held()}")


def start_demo(directory: Path) -> tuple[subprocess.Popen[str], str, int, str]:
    """The demo, and the client address and web address it printed."""
    env = dict(os.environ, XMPPBLOG_DEMO_DIR=str(directory), XMPPBLOG_VENV=str(Path(sys.executable).parents[1]))
    proc = subprocess.Popen(["bash", str(ROOT / "scripts/demo.sh")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if line.startswith("Logs:"):
            break
    text = "".join(printed)
    client = re.search(r"Client address : ([0-9.]+):(\d+)", text)
    web = re.search(r"Web +: (http://\S+)", text)
    if client is None or web is None:
        fail(f"the demo did not print its client and web addresses:\n{text}")
    for needed in ("alice@localhost", "bob@localhost", "blog.localhost", "follow alice@localhost",
                   "alice@blog.localhost"):
        if needed not in text:
            fail(f"the demo's instructions do not mention {needed!r}:\n{text}")
    return proc, client[1], int(client[2]), web[1]


async def follow_and_post(ip: str, port: int, web: str) -> None:
    alice = await connect("alice@localhost", ip, port)
    bob = await connect("bob@localhost", ip, port)
    page = urllib.request.urlopen(web, timeout=10).read().decode()
    if "blog.localhost" not in page:
        fail("the demo's empty web page does not say where to post (the service JID)")
    answer = await bob.say("follow alice@localhost", to="blog.localhost")
    if "following" not in answer.lower():
        fail(f"follow by chat answered {answer!r}")
    # The blog JID asks for bob's presence (to deliver while he is online); his client accepts.
    if await bob.presences.wait(lambda p: p["type"] == "subscribe" and p["from"].bare == "alice@blog.localhost") \
            is None:
        fail("alice's blog JID did not ask for bob's presence")
    await bob.say("tracking", to="blog.localhost")  # a round trip: his presence has been seen
    await alice.say("Hello from beside the admin's own Prosody", to="blog.localhost")
    got = await bob.inbox.wait(lambda m: "beside the admin's own Prosody" in m["body"], timeout=15)
    if got is None:
        fail("bob did not get alice's post")
    page = urllib.request.urlopen(web, timeout=10).read().decode()
    if "beside the admin" not in page:
        fail("the demo's web page does not show the post")
    alice.disconnect()
    bob.disconnect()


def run_suite_sample(tests: tuple[str, ...] = SUITE_SAMPLE) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *tests],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0 or "skipped" in done.stdout:
        fail(f"tests beside the admin's Prosody: exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-1000:]}")
    print(f"suite sample: {done.stdout.strip().splitlines()[-1]}", flush=True)


async def main(tests: tuple[str, ...] = SUITE_SAMPLE) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="coexistence-") as tmp:
        admins = start_admins_prosody(Path(tmp) / "admins-prosody")
        demo = None
        try:
            await admins_prosody_serves()
            demo, ip, port, web = start_demo(Path(tmp) / "demo")
            if port in DEFAULT_PORTS:
                fail(f"the demo's client port is a default one: {port}")
            await follow_and_post(ip, port, web)
            doctor = subprocess.run([sys.executable, "-m", "xmppblog", "-c", str(Path(tmp) / "demo/xmppblog.toml"),
                                     "doctor"], capture_output=True, text=True, timeout=120)
            if doctor.returncode != 0:
                fail(f"doctor does not pass on the demo:\n{doctor.stdout}{doctor.stderr}")
            print(f"doctor on the demo: {doctor.stdout.strip().splitlines()[-1]}", flush=True)
            await admins_prosody_serves()
            os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
            if demo.wait(30) == 0:
                fail("the demo exited 0 on Ctrl-C")  # it reports how it stopped; 130 expected
            demo = None
            await admins_prosody_serves()
            run_suite_sample(tests)
            await admins_prosody_serves()
            print("coexistence: the admin's Prosody kept all six default ports and served throughout", flush=True)
        finally:
            if demo is not None:
                os.killpg(demo.pid, signal.SIGTERM)
                demo.wait(30)
            admins.terminate()
            admins.wait(15)


if __name__ == "__main__":
    # `--whole-suite`: every other test instead of the sample (about ten minutes), to measure
    # that `setup.sh test` passes beside an admin's Prosody: unshare --net python -m tests.e2e.coexistence --whole-suite
    whole = ("tests", "--deselect", "tests/e2e/test_coexistence.py::"
             "test_the_demo_and_the_tests_leave_an_admins_prosody_on_the_default_ports_serving")
    asyncio.run(main(whole if sys.argv[1:] == ["--whole-suite"] else SUITE_SAMPLE))
