#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Start a local Prosody for `localhost` on 127.0.0.1 with the component
# blog.localhost, create two demo accounts, and run xmppblog on its embedded
# defaults (SQLite in /var/lib/xmppblog). Ctrl-C stops both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XMPPBLOG_VENV:-$ROOT/.venv}"
STATE="${XMPPBLOG_DEMO_DIR:-/var/lib/xmppblog/demo}"
SECRET="${XMPPBLOG_DEMO_SECRET:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
mkdir -p "$STATE/prosody/data"

cat >"$STATE/prosody/prosody.cfg.lua" <<CFG
-- Demo only: plaintext on loopback, no TLS.
run_as_root = true
pidfile = "$STATE/prosody/prosody.pid"
data_path = "$STATE/prosody/data"
log = { { levels = { min = "info" }, to = "file", filename = "$STATE/prosody/prosody.log" } }
interfaces = { "127.0.0.1" }
component_interfaces = { "127.0.0.1" }
c2s_require_encryption = false
s2s_require_encryption = false
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
prosody --config "$STATE/prosody/prosody.cfg.lua" -F >"$STATE/prosody/console.log" 2>&1 &
PROSODY_PID=$!
trap 'kill $PROSODY_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/5347) 2>/dev/null && break; sleep 0.1; done

cat >"$STATE/xmppblog.toml" <<CFG
[component]
jid = "blog.localhost"
secret = "$SECRET"
CFG

cat <<MSG

xmppblog demo is starting.
  Host server : Prosody on 127.0.0.1:5222 (plaintext, loopback only)
  Accounts    : alice@localhost / password, bob@localhost / password
  Service JID : blog.localhost   (alice's blog: alice@blog.localhost)
  Database    : SQLite, the embedded default (/var/lib/xmppblog/xmppblog.db)
  Web         : http://127.0.0.1:5281/ (public timeline, feeds, JSON API at /api)
Connect a client (Gajim, Dino, Movim, profanity…) to 127.0.0.1 as bob@localhost and
subscribe to urn:xmpp:microblog:0 at alice@blog.localhost; log in as alice and publish.
Stop with Ctrl-C.

MSG
"$VENV/bin/xmppblog" -c "$STATE/xmppblog.toml" run
