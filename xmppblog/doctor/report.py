# SPDX-License-Identifier: AGPL-3.0-or-later
"""The doctor's findings: one line per check, or one JSON object."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    message: str


class Report:
    """Findings in the order they were made."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, status: Status, message: str) -> Check:
        check = Check(name, status, " ".join(message.split()))  # one line, whatever the cause said
        self.checks.append(check)
        return check

    def ok(self, name: str, message: str) -> Check:
        return self.add(name, Status.OK, message)

    def warn(self, name: str, message: str) -> Check:
        return self.add(name, Status.WARN, message)

    def fail(self, name: str, message: str) -> Check:
        return self.add(name, Status.FAIL, message)

    def skip(self, name: str, message: str) -> Check:
        return self.add(name, Status.SKIP, message)

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    def exit_status(self) -> int:
        """0 only when nothing failed (warnings and skipped checks do not count)."""
        return 1 if self.failed else 0

    def text(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"{c.status.value.upper():<4}  {c.name:<{width}}  {c.message}" for c in self.checks]
        counts = {s: sum(c.status is s for c in self.checks) for s in Status}
        lines.append(f"doctor: {counts[Status.FAIL]} failed, {counts[Status.WARN]} warning(s), "
                     f"{counts[Status.OK]} ok" + (f", {counts[Status.SKIP]} skipped" if counts[Status.SKIP] else ""))
        return "\n".join(lines)

    def json(self) -> str:
        return json.dumps({"ok": not self.failed, "checks": [
            {"name": c.name, "status": c.status.value, "message": c.message} for c in self.checks]})
