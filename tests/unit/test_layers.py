# SPDX-License-Identifier: AGPL-3.0-or-later
"""Imports only point downward (DESIGN.md "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "xmppblog"

#: layer -> packages it may import from the project
ALLOWED = {
    "core": {"core", "protocol"},
    "storage": {"core", "storage", "migrations", "protocol"},
    "spamguard": {"core", "spamguard", "protocol"},
    # the router hands spamguard's verdict through unchanged
    "xmpp": {"core", "xmpp", "protocol", "spamguard.verdict"},
    "pubsub": {"core", "spamguard", "xmpp", "pubsub", "__version__", "protocol"},
    "im": {"core", "spamguard", "xmpp", "pubsub", "im", "protocol"},
    "federation": {"core", "spamguard", "xmpp", "pubsub", "im", "federation", "protocol"},
    # a worker's place in a cluster: its leases and the presence it shares, through storage
    "cluster": {"core", "storage", "im.online", "cluster", "protocol"},
    "http": {"core", "http", "pubsub.xep_0277", "pubsub.sanitize", "spamguard.buckets", "__version__",
             "protocol"},
}


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG).with_suffix("")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(rel.parts[: len(rel.parts) - node.level])
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:
                out.update(".".join(base + [a.name]) for a in node.names)
            else:
                out.add(target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xmppblog"):
            out.add(node.module.removeprefix("xmppblog").lstrip("."))
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("xmppblog.") for a in node.names if a.name.startswith("xmppblog"))
    return out


def test_no_upward_imports():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in (PKG / layer).rglob("*.py") if (PKG / layer).exists() else []:
            for imp in project_imports(path):
                if not any(imp == a or imp.startswith(a + ".") or imp == "" for a in allowed):
                    bad.append(f"{path.relative_to(PKG)} imports {imp}")
    assert not bad, "\n".join(bad)


def test_the_protocol_constants_import_nothing():
    assert project_imports(PKG / "protocol.py") == set()


def test_core_imports_only_stdlib():
    third_party = {"sqlalchemy", "slixmpp", "aiohttp", "alembic"}
    for path in (PKG / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in third_party for n in names), f"{path}: {names}"
