# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #14 rules without storage: confirmation codes, export link tokens, how a post's
delivery tallies are judged, and the sentences `status ID` answers with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xmppblog.core.accounts import CODE_ALPHABET, CodeRefused, Confirmations, Links, new_code, shown, typed
from xmppblog.core.model import DeliveryTally
from xmppblog.core.status import ServerState, server_line, state_of, summarize
from xmppblog.im.text import delivery_status

from ..support.core import FakeClock

ALICE, BOB = "alice@example.org", "bob@example.org"


def refusal(codes: Confirmations, user: str, code: str) -> str:
    with pytest.raises(CodeRefused) as info:
        codes.confirm(user, code)
    return info.value.reason


def test_a_code_is_bound_to_its_user_used_once_and_typed_loosely():
    clock = FakeClock()
    codes = Confirmations(clock, make=lambda: "K7QM2XPD")
    issued = codes.issue(ALICE)
    assert issued.expires == clock.now() + timedelta(minutes=10) and shown(issued.code) == "K7QM-2XPD"
    assert refusal(codes, BOB, "K7QM-2XPD") == "none", "alice's code is no code for bob"
    codes.confirm(ALICE, " k7qm-2xpd ")
    assert refusal(codes, ALICE, "K7QM-2XPD") == "none", "used up"


def test_a_code_expires_and_wrong_guesses_void_it():
    clock = FakeClock()
    codes = Confirmations(clock, make=lambda: "K7QM2XPD")
    codes.issue(ALICE)
    clock.advance(600)
    assert refusal(codes, ALICE, "K7QM2XPD") == "expired"
    codes.issue(ALICE)
    assert [refusal(codes, ALICE, "AAAAAAAA") for _ in range(4)] == ["wrong"] * 4
    assert refusal(codes, ALICE, "AAAAAAAA") == "void"
    assert refusal(codes, ALICE, "K7QM2XPD") == "none", "the right code is no good once void"
    made = iter(["AAAABBBB", "CCCCDDDD"])
    codes = Confirmations(clock, make=lambda: next(made))
    first, second = codes.issue(ALICE), codes.issue(ALICE)
    assert refusal(codes, ALICE, first.code) == "wrong", "asking again voids the earlier code"
    codes.confirm(ALICE, second.code)


def test_generated_codes_are_unambiguous_and_varied():
    made = {new_code() for _ in range(50)}
    assert len(made) == 50 and all(len(c) == 8 and set(c) <= set(CODE_ALPHABET) for c in made)
    assert not set("01OIL") & set(CODE_ALPHABET)
    assert typed("ab cd-ef gh") == "ABCDEFGH"


def test_link_tokens_name_one_user_until_they_expire():
    clock = FakeClock()
    links = Links(clock)
    one = links.issue(ALICE)
    assert len(one.code) >= 32 and links.holder(one.code) == ALICE
    assert links.holder("guess") is None
    two = links.issue(ALICE)
    assert links.holder(one.code) is None and links.holder(two.code) == ALICE, "one live link per user"
    clock.advance(3600)
    assert links.holder(two.code) is None


def test_server_states():
    assert state_of(DeliveryTally("s", delivered=3, retrying=1)) is ServerState.RETRYING
    assert state_of(DeliveryTally("s", delivered=3, pending=1)) is ServerState.PENDING
    assert state_of(DeliveryTally("s", delivered=1, failed=2)) is ServerState.REACHED
    assert state_of(DeliveryTally("s", failed=2)) is ServerState.FAILED


NOW = datetime(2026, 12, 15, 13, 40, tzinfo=UTC)


def here(server: str) -> bool:
    return server in ("example.org", "blog.example.org")


def test_the_status_sentence():
    tallies = [DeliveryTally("", delivered=30), DeliveryTally("example.org", delivered=7)]
    tallies += [DeliveryTally(f"blog.s{n}.org", delivered=1) for n in range(4)]
    tallies.append(DeliveryTally("blog.far.org", retrying=1, next_try=NOW.replace(hour=14, minute=5)))
    st = summarize("3f9a1c0e", tallies, here)
    assert st.here == DeliveryTally("", delivered=37), "this server's own domains count as here"
    assert delivery_status("3f9a1c", st, NOW, 7) == (
        "#3f9a1c reached 37 people here, 4 of 5 servers, 1 retrying (blog.far.org, next try 14:05 UTC).")
    tomorrow = summarize("x", [DeliveryTally("b.org", retrying=1, next_try=NOW + timedelta(days=1)),
                               DeliveryTally("c.org", pending=2), DeliveryTally("d.org", failed=1),
                               DeliveryTally("", delivered=1, pending=2)], here)
    assert delivery_status("x", tomorrow, NOW, 7) == (
        "#x reached 1 person here (2 more queued), 0 of 3 servers, 1 retrying (b.org, next try "
        "2026-12-16 13:40 UTC), 1 waiting (c.org), 1 failed (d.org).")
    assert delivery_status("y", summarize("y", [], here), NOW, 7).startswith("#y was sent to nobody")
    assert delivery_status("z", summarize("z", [DeliveryTally("", delivered=2)], here), NOW, 7) == (
        "#z reached 2 people here, no other server.")


def test_admins_line_per_server():
    t = DeliveryTally("blog.far.org", delivered=5, retrying=1, failed=2, next_try=NOW)
    assert server_line(summarize("", [t], here).servers[0]) == (
        "blog.far.org: retrying, 5 delivered, 0 pending, 1 retrying, 2 failed (next try 2026-12-15 13:40 UTC)")
