# SPDX-License-Identifier: AGPL-3.0-or-later
"""setup.cfg lists every package, so `pip install .` ships all of them."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "xmppblog").rglob("__init__.py")}
    found |= {"xmppblog." + ".".join(p.parent.relative_to(ROOT).parts)
              for p in (ROOT / "migrations").rglob("__init__.py")}
    assert found == listed


def test_every_data_file_is_installed():
    """Templates and other non-Python files ship only if [options.package_data] names them."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    dirs = {"xmppblog.migrations": ROOT / "migrations"}
    listed = set()
    for package, globs in cfg["options.package_data"].items():
        where = dirs.get(package, ROOT.joinpath(*package.split(".")))
        listed |= {p for g in globs.split() for p in where.glob(g)}
    data = {p for top in ("xmppblog", "migrations") for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert data - listed == set()
