# SPDX-License-Identifier: AGPL-3.0-or-later
"""A transaction that lost a unique-key race is run again; a real conflict is not hidden."""

from __future__ import annotations

import pytest

from xmppblog.core import errors
from xmppblog.core.transactions import retry_contended


async def test_contended_transactions_are_retried_then_give_up():
    calls = []

    @retry_contended
    async def flaky(fail_times: int) -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise errors.Contended("raced")
        return "ok"

    assert await flaky(2) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(errors.Contended):
        await flaky(5)
    assert len(calls) == 3

    @retry_contended
    async def conflict() -> None:
        calls.append(1)
        raise errors.Conflict("a real conflict")

    calls.clear()
    with pytest.raises(errors.Conflict):
        await conflict()
    assert len(calls) == 1
