# SPDX-License-Identifier: AGPL-3.0-or-later
"""Config loading: one clear line per mistake, env overrides, defaults."""

from __future__ import annotations

import pytest

from xmppblog.__main__ import main
from xmppblog.config import ConfigError, load, render

GOOD = '[component]\njid = "blog.example.org"\nsecret = "s"\n'


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return str(p)


def test_defaults_and_derived_users_domain(tmp_path):
    cfg = load(write(tmp_path, GOOD), env={})
    assert cfg.component.users_domain == "example.org"
    assert cfg.component.port == 5347 and cfg.component.host == "127.0.0.1"
    assert cfg.database.url.startswith("sqlite+aiosqlite:///")
    assert cfg.limits.max_payload_bytes == 65536 and cfg.limits.max_items_per_node == 10000


def test_example_config_is_valid():
    cfg = load("conf/xmppblog.example.toml", env={})
    assert cfg.component.jid == "blog.example.org"
    assert cfg.component.admins == ("admin@example.org",)


@pytest.mark.parametrize("text,needle", [
    (GOOD + "colour = 1\n", "[component] colour: unknown key"),
    ('[component]\njid = "blog.example.org"\n', "[component] secret: required key is missing"),
    (GOOD + 'port = "5347"\n', "[component] port: expected an integer"),
    (GOOD + "[limits]\nmax_payload_bytes = true\n", "[limits] max_payload_bytes: expected an integer"),
    (GOOD + "[nonsense]\n", "[nonsense]: unknown section"),
    (GOOD + '[http]\noperators_from = ["everyone"]\n', "[http] operators_from: 'everyone' is not an address"),
    (GOOD + 'admins = "admin@example.org"\n', "[component] admins: expected a list of strings"),
    ('[component]\njid = "alice@example.org"\nsecret = "s"\n', "[component] jid: must be a domain"),
    (GOOD + '[database]\nurl = "mysql://x"\n', "[database] url"),
    (GOOD + "[limits]\nmax_stanza_bytes = 600000\n", "[limits] max_stanza_bytes"),
    ("not toml [", "not valid TOML"),
])
def test_mistakes_name_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path, text), env={})
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_environment_overrides(tmp_path):
    cfg = load(write(tmp_path, GOOD), env={"XMPPBLOG_COMPONENT_SECRET": "from-env",
                                           "XMPPBLOG_COMPONENT_PORT": "5348",
                                           "XMPPBLOG_COMPONENT_ADMINS": "a@example.org, B@Example.org"})
    assert cfg.component.secret == "from-env" and cfg.component.port == 5348
    assert cfg.component.admins == ("a@example.org", "b@example.org")
    with pytest.raises(ConfigError, match="XMPPBLOG_COMPONENT_PORT: expected an integer"):
        load(write(tmp_path, GOOD), env={"XMPPBLOG_COMPONENT_PORT": "x"})


def test_render_hides_secret(tmp_path):
    text = render(load(write(tmp_path, GOOD), env={}))
    assert 'secret = "********"' in text and 'jid = "blog.example.org"' in text


def test_cli_check_config_help_version(tmp_path, capsys, monkeypatch):
    assert main(["-c", write(tmp_path, GOOD), "check-config"]) == 0
    assert "users_domain = \"example.org\"" in capsys.readouterr().out
    assert main(["-c", write(tmp_path, GOOD + "bogus = 1\n"), "check-config"]) == 2
    assert "[component] bogus: unknown key" in capsys.readouterr().err
    monkeypatch.delenv("XMPPBLOG_CONFIG", raising=False)
    assert main(["run"]) == 2
    assert "no config file" in capsys.readouterr().err
    monkeypatch.setenv("XMPPBLOG_CONFIG", write(tmp_path, GOOD))
    assert main(["check-config"]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "xmppblog" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "check-config" in capsys.readouterr().out


def test_cli_stats_and_rotate_key(tmp_path, capsys):
    cfg = write(tmp_path, GOOD + f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n')
    assert main(["-c", cfg, "stats"]) == 1
    assert "the database is empty" in capsys.readouterr().out
    assert main(["-c", cfg, "rotate-key"]) == 0
    first = capsys.readouterr().out.split()[3]
    assert main(["-c", cfg, "rotate-key"]) == 0
    assert capsys.readouterr().out.split()[3] != first
    assert main(["-c", cfg, "stats"]) == 0
    assert "spamguard: 0 refused" in capsys.readouterr().out


def test_an_aggregator_does_not_list_itself_as_a_source(tmp_path):
    import pytest as _pytest

    from xmppblog.config import ConfigError
    p = tmp_path / "x.toml"
    p.write_text('[component]\njid = "blog.example.org"\nsecret = "s"\n[aggregator]\nsources = ["blog.example.org"]\n')
    with _pytest.raises(ConfigError, match="own service JID"):
        load(str(p), env={})
