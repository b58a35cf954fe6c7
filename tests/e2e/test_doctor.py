# SPDX-License-Identifier: AGPL-3.0-or-later
"""`xmppblog doctor` against real Prosody servers: it passes on a working setup, running or
not, and names the cause of each broken one."""

from __future__ import annotations

import json
import subprocess
import sys

from xmppblog.doctor.federation import check_tls, find_endpoints

from ..support import ports
from ..support.component import Component


def doctor(config, *extra: str) -> tuple[int, dict[str, dict]]:
    done = subprocess.run([sys.executable, "-m", "xmppblog", "-c", str(config), "doctor", "--json", *extra],
                          capture_output=True, text=True, timeout=120)
    out = json.loads(done.stdout)
    assert out["ok"] is (done.returncode == 0), done.stdout
    return done.returncode, {c["name"]: c for c in out["checks"]}


def migrated(comp: Component) -> Component:
    subprocess.run([sys.executable, "-m", "xmppblog", "-c", str(comp.config), "migrate"], check=True,
                   capture_output=True, timeout=120)
    return comp


def stopped_component(server, tmp_path, **edits: str) -> Component:
    """A config for `server`'s component with no process running it and no HTTP listener."""
    comp = Component(server, tmp_path)
    text = comp.config.read_text().replace(f'listen = "{server.ip}:{ports.HTTP}"', 'listen = ""')
    for old, new in edits.items():
        text = text.replace(old, new)
    comp.config.write_text(text)
    return comp


def test_doctor_passes_through_the_running_component(component):
    rc, checks = doctor(component.config)
    assert rc == 0, checks
    assert checks["handshake"]["status"] == "ok" and "running xmppblog" in checks["handshake"]["message"]
    assert checks["disco"]["status"] == "ok"
    assert "blog.alpha.test is pubsub/service" in checks["disco"]["message"]
    assert "@blog.alpha.test is pubsub/pep" in checks["disco"]["message"]
    # alpha.test is a special-use name: federation checks may warn, never fail
    assert checks["dns"]["status"] in ("ok", "warn")


def test_doctor_passes_with_its_own_connection_when_xmppblog_is_not_running(epsilon, tmp_path):
    comp = migrated(stopped_component(epsilon, tmp_path))
    rc, checks = doctor(comp.config)
    assert rc == 0, checks
    assert checks["host"]["status"] == checks["handshake"]["status"] == checks["disco"]["status"] == "ok"
    assert "blog.epsilon.test and xmppblog-doctor@blog.epsilon.test" in checks["disco"]["message"]
    assert checks["http"]["status"] == "skip"


def test_doctor_names_a_wrong_secret(epsilon, tmp_path):
    comp = migrated(stopped_component(epsilon, tmp_path, **{'secret = "blogsecret"': 'secret = "not-it"'}))
    rc, checks = doctor(comp.config)
    assert rc == 1
    assert checks["handshake"]["status"] == "fail"
    assert "secret" in checks["handshake"]["message"] and "component_secret" in checks["handshake"]["message"]
    assert checks["database"]["status"] == "ok", "only the broken part is named"


def test_doctor_names_an_unreachable_host(epsilon, tmp_path):
    comp = migrated(stopped_component(epsilon, tmp_path, **{f"port = {ports.COMPONENT}": "port = 5399"}))
    rc, checks = doctor(comp.config)
    assert rc == 1
    assert checks["host"]["status"] == "fail"
    assert f"cannot reach {epsilon.ip}:5399" in checks["host"]["message"]
    assert "handshake" not in checks


def test_doctor_names_an_unmigrated_database(epsilon, tmp_path):
    comp = stopped_component(epsilon, tmp_path)
    rc, checks = doctor(comp.config)
    assert rc == 1
    assert checks["database"]["status"] == "fail"
    assert f"run `xmppblog -c {comp.config} migrate`" in checks["database"]["message"]
    (tmp_path / "xmppblog.db").write_bytes(b"")  # there, but never migrated
    rc, checks = doctor(comp.config)
    assert rc == 1 and "reachable but empty" in checks["database"]["message"]


def test_doctor_reports_a_bad_config_as_a_failed_check(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[component]\njid = "blog.example.org"\n')
    rc, checks = doctor(bad)
    assert rc == 1 and list(checks) == ["config"]
    assert "secret" in checks["config"]["message"]
    done = subprocess.run([sys.executable, "-m", "xmppblog", "-c", str(bad), "doctor"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.startswith("FAIL  config")


async def test_what_other_servers_find_for_a_component_domain(net, alpha):
    """SRV and address lookups as another server would make them (the suite's DNS server
    holds the SRV records of the test servers' own s2s port)."""
    found = await find_endpoints(alpha.component, nameserver=("127.0.0.1", net.dns.port))
    assert found.via_srv and found.targets == [(alpha.component, ports.S2S)]
    assert found.addresses == [alpha.ip]
    assert "only to loopback" in found.problem
    missing = await find_endpoints("nowhere.alpha.test", nameserver=("127.0.0.1", net.dns.port))
    assert "no SRV record" in missing.problem and "3600 IN SRV" in missing.problem
    ok, what = await check_tls(alpha.component, alpha.ip, ports.S2S)
    assert not ok and "offers no TLS" in what  # the test servers run without certificates
