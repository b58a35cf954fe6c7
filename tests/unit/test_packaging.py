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
