# SPDX-License-Identifier: AGPL-3.0-or-later
"""The ports the test servers listen on.

None is a default XMPP or HTTP port (5222, 5269, 5347, 5280, 5281, 5443): the
suite runs beside a Prosody or an ejabberd already serving those, even on
0.0.0.0 (tests/e2e/test_coexistence.py proves it). Servers reach each other's
s2s port through SRV records (tests/support/dns.py).
"""

C2S = 25222
S2S = 25269
COMPONENT = 25347
HTTP = 28277
#: ejabberd's Erlang distribution port (epmd-less)
ERL_DIST = 25210
