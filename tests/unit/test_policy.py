# SPDX-License-Identifier: AGPL-3.0-or-later
"""The affiliation x action x access-model matrix (XEP-0060 §4.1, §4.5)."""

from __future__ import annotations

import pytest

from xmppblog.core import errors as E
from xmppblog.core.model import AccessModel as M
from xmppblog.core.model import Affiliation as A
from xmppblog.core.model import SubState as S
from xmppblog.core.policy import Action, Viewer, check, may, subscribe_state

OK = None
READ_REFUSALS = {
    M.OPEN: OK,
    M.PRESENCE: E.PresenceSubscriptionRequired,
    M.WHITELIST: E.ClosedNode,
    M.AUTHORIZE: E.NotSubscribedAccess,
}


@pytest.mark.parametrize("access", list(M))
@pytest.mark.parametrize("aff", list(A))
@pytest.mark.parametrize("action", [Action.RETRIEVE_ITEMS, Action.BE_SUBSCRIBED, Action.PUBLISH_COMMENT])
def test_read_matrix_without_presence_or_subscription(access, aff, action):
    viewer = Viewer(aff)
    if aff is A.OUTCAST:
        expected = E.Forbidden
    elif aff in (A.OWNER, A.PUBLISHER, A.MEMBER):
        expected = OK
    else:
        expected = READ_REFUSALS[access]
    if expected is OK:
        check(action, access, viewer)
    else:
        with pytest.raises(expected):
            check(action, access, viewer)


@pytest.mark.parametrize("state,expected", [(S.SUBSCRIBED, OK), (S.PENDING, E.PendingSubscription),
                                             (S.NONE, E.NotSubscribedAccess)])
def test_authorize_reads_follow_subscription_state(state, expected):
    v = Viewer(A.NONE, state)
    if expected is OK:
        check(Action.RETRIEVE_ITEMS, M.AUTHORIZE, v)
    else:
        with pytest.raises(expected):
            check(Action.RETRIEVE_ITEMS, M.AUTHORIZE, v)


def test_presence_subscription_opens_presence_nodes_only():
    v = Viewer(A.NONE, has_presence=True)
    check(Action.RETRIEVE_ITEMS, M.PRESENCE, v)
    with pytest.raises(E.ClosedNode):
        check(Action.RETRIEVE_ITEMS, M.WHITELIST, v)


@pytest.mark.parametrize("action", [Action.CONFIGURE, Action.PURGE, Action.MANAGE_AFFILIATIONS,
                                    Action.MANAGE_SUBSCRIPTIONS, Action.GET_PENDING, Action.RETRACT_ANY])
@pytest.mark.parametrize("aff", list(A))
def test_owner_only_actions(action, aff):
    assert may(action, M.OPEN, Viewer(aff)) is (aff is A.OWNER)


@pytest.mark.parametrize("aff,allowed", [(A.OWNER, True), (A.PUBLISHER, True), (A.MEMBER, False),
                                         (A.NONE, False), (A.OUTCAST, False)])
def test_publish_needs_publisher_or_owner(aff, allowed):
    assert may(Action.PUBLISH, M.OPEN, Viewer(aff)) is allowed


@pytest.mark.parametrize("access,aff,state", [
    (M.OPEN, A.NONE, S.SUBSCRIBED), (M.AUTHORIZE, A.NONE, S.PENDING),
    (M.AUTHORIZE, A.MEMBER, S.SUBSCRIBED), (M.AUTHORIZE, A.OWNER, S.SUBSCRIBED),
])
def test_subscribe_state(access, aff, state):
    check(Action.SUBSCRIBE, access, Viewer(aff))
    assert subscribe_state(access, Viewer(aff)) is state


def test_subscribe_refusals():
    with pytest.raises(E.ClosedNode):
        check(Action.SUBSCRIBE, M.WHITELIST, Viewer())
    with pytest.raises(E.PresenceSubscriptionRequired):
        check(Action.SUBSCRIBE, M.PRESENCE, Viewer())
    with pytest.raises(E.Forbidden):
        check(Action.SUBSCRIBE, M.AUTHORIZE, Viewer(A.OUTCAST))


def test_system_actor_may_everything():
    for action in Action:
        check(action, M.WHITELIST, Viewer(system=True))
