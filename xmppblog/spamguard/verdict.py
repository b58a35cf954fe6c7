# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one verdict type of spamguard: accept, drop (silently, with a reason) or reject (an iq)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    ACCEPT = "accept"
    DROP = "drop"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    reason: str = ""
    condition: str | None = None  # for REJECT: the XMPP condition to answer with

    @property
    def accepted(self) -> bool:
        return self.kind is Kind.ACCEPT


ACCEPT = Verdict(Kind.ACCEPT)


def drop(reason: str) -> Verdict:
    return Verdict(Kind.DROP, reason)


def reject(condition: str, reason: str) -> Verdict:
    return Verdict(Kind.REJECT, reason, condition)
