# SPDX-License-Identifier: AGPL-3.0-or-later
"""The demo and the tests run beside an admin's own Prosody on the default ports,
and leave it serving (the scenario is tests/e2e/coexistence.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_and_the_tests_leave_an_admins_prosody_on_the_default_ports_serving():
    missing = [tool for tool in ("unshare", "ip", "prosody", "ejabberdctl") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        why = f"needs root and {', '.join(missing) or 'nothing else'} (scripts/setup.sh test installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    # A private network namespace: its own loopback, where "the admin's Prosody" can hold
    # 0.0.0.0 on the default ports without touching this machine's.
    done = subprocess.run(["unshare", "--net", "--", sys.executable, "-m", "tests.e2e.coexistence"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-6000:]
    assert "kept all six default ports and served throughout" in done.stdout
    assert "suite sample: 2 passed" in done.stdout
