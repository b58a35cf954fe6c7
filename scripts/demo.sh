#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# The demo: a Prosody of its own for `localhost` with the component
# blog.localhost, two accounts, and xmppblog on its embedded defaults (SQLite).
# Ctrl-C stops both.
#
# Everything runs on ports of its own on 127.0.0.1, never the default XMPP and
# HTTP ports (5222, 5269, 5347, 5280, 5281, 5443), so it works beside a Prosody
# or an ejabberd already running on this machine and touches neither.
# Federation is off (no s2s listener): the demo talks to nobody else.
#
# Environment: XMPPBLOG_DEMO_DIR (state, default /var/lib/xmppblog/demo),
# XMPPBLOG_DEMO_IP (default 127.0.0.1), XMPPBLOG_DEMO_C2S_PORT (15222),
# XMPPBLOG_DEMO_COMPONENT_PORT (15347), XMPPBLOG_DEMO_HTTP_PORT (18277),
# XMPPBLOG_DEMO_SECRET (random by default), XMPPBLOG_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XMPPBLOG_VENV:-$ROOT/.venv}"
STATE="${XMPPBLOG_DEMO_DIR:-/var/lib/xmppblog/demo}"
IP="${XMPPBLOG_DEMO_IP:-127.0.0.1}"
C2S_PORT="${XMPPBLOG_DEMO_C2S_PORT:-15222}"
COMPONENT_PORT="${XMPPBLOG_DEMO_COMPONENT_PORT:-15347}"
HTTP_PORT="${XMPPBLOG_DEMO_HTTP_PORT:-18277}"
SECRET="${XMPPBLOG_DEMO_SECRET:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
for spec in "c2s:$C2S_PORT:XMPPBLOG_DEMO_C2S_PORT" "component:$COMPONENT_PORT:XMPPBLOG_DEMO_COMPONENT_PORT" \
	"http:$HTTP_PORT:XMPPBLOG_DEMO_HTTP_PORT"; do
	IFS=: read -r what port var <<<"$spec"
	if port_open "$IP" "$port"; then
		echo "demo: $IP:$port ($what) is already in use by another program; choose another port with $var=PORT" >&2
		exit 1
	fi
done

mkdir -p "$STATE/prosody/data"
cat >"$STATE/prosody/prosody.cfg.lua" <<CFG
-- Demo only: plaintext on loopback, no TLS, no federation.
run_as_root = true
pidfile = "$STATE/prosody/prosody.pid"
data_path = "$STATE/prosody/data"
log = { { levels = { min = "info" }, to = "file", filename = "$STATE/prosody/prosody.log" } }
interfaces = { "$IP" }
c2s_ports = { $C2S_PORT }
component_interfaces = { "$IP" }
component_ports = { $COMPONENT_PORT }
c2s_direct_tls_ports = { }
modules_disabled = { "s2s" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
modules_enabled = { "saslauth"; "roster"; "disco"; "ping"; "pep"; "register" }
allow_registration = true
VirtualHost "localhost"
Component "blog.localhost"
	component_secret = "$SECRET"
CFG

for user in alice bob; do
	prosodyctl --config "$STATE/prosody/prosody.cfg.lua" register "$user" localhost password >/dev/null 2>&1 || true
done

PIDS=()
stop() { ((${#PIDS[@]})) && kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

prosody --config "$STATE/prosody/prosody.cfg.lua" -F >"$STATE/prosody/console.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
	port_open "$IP" "$COMPONENT_PORT" && break
	kill -0 "${PIDS[0]}" 2>/dev/null || { echo "demo: Prosody exited:" >&2; tail -20 "$STATE/prosody/console.log" "$STATE/prosody/prosody.log" >&2; exit 1; }
	sleep 0.1
done

cat >"$STATE/xmppblog.toml" <<CFG
# The demo's configuration: the embedded defaults (SQLite) except for its own ports and files.
[component]
jid = "blog.localhost"
secret = "$SECRET"
host = "$IP"
port = $COMPONENT_PORT
[database]
url = "sqlite+aiosqlite:///$STATE/xmppblog.db"
[http]
listen = "$IP:$HTTP_PORT"
CFG

"$VENV/bin/xmppblog" -c "$STATE/xmppblog.toml" run 2>"$STATE/xmppblog.log" &
PIDS+=($!)
for _ in $(seq 300); do
	grep -q "connected to .* as component" "$STATE/xmppblog.log" 2>/dev/null && port_open "$IP" "$HTTP_PORT" && break
	kill -0 "${PIDS[1]}" 2>/dev/null || { echo "demo: xmppblog exited:" >&2; tail -20 "$STATE/xmppblog.log" >&2; exit 1; }
	sleep 0.1
done

cat <<MSG

xmppblog demo is running.

  Client address : $IP:$C2S_PORT  (plaintext, loopback only: in your client, set the
                   server/host to $IP and the port to $C2S_PORT)
  Accounts       : alice@localhost / password    bob@localhost / password
  Service JID    : blog.localhost  (the chat bot; alice's blog is alice@blog.localhost)
  Web            : http://$IP:$HTTP_PORT/   (public timeline, feeds, JSON API at /api)

From an ordinary IM client (Gajim, Dino, Conversations, profanity…):
  1. Log in as bob@localhost and follow alice, either way:
       - add alice@blog.localhost to your contacts (roster), or
       - send "follow alice@localhost" in a chat with blog.localhost.
  2. Log in as alice@localhost and post: send any text in a chat with
     blog.localhost ("help" lists the commands). Bob gets it as a chat message;
     it appears on http://$IP:$HTTP_PORT/ too.

Logs: $STATE/xmppblog.log, $STATE/prosody/prosody.log. Stop with Ctrl-C.
MSG
wait -n "${PIDS[@]}" || true
echo "demo: a process stopped; see $STATE/xmppblog.log and $STATE/prosody/prosody.log" >&2
exit 1
