#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# One entry point for a fresh Debian 12 machine (run as root):
#
#   scripts/setup.sh run    install what the demo needs (Prosody, Python venv) and
#                           run it: a Prosody of its own and xmppblog on its
#                           embedded defaults (SQLite), on ports of their own
#   scripts/setup.sh test   install everything the test suite needs and run it
#   scripts/setup.sh deps   only install the test suite's dependencies
#
# Debian packages: prosody (host server of the demo and the tests), and for the
# tests lua-unbound (Prosody's resolver, pointed at the suite's DNS server),
# ejabberd (interop tests), chromium (page tests), postgresql (the PostgreSQL
# lane), iproute2 and util-linux (the coexistence test's network namespace),
# libervia-cli and dbus-daemon (a real XEP-0277 client, on a D-Bus bus of its own).
#
# Neither command stops a service or a process it did not start: packages are
# installed with their services held back (policy-rc.d), and the demo and the
# tests run their own server instances on their own ports, so a Prosody or an
# ejabberd already serving this machine keeps serving.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XMPPBLOG_VENV:-$ROOT/.venv}"
cd "$ROOT"

say() { printf '\n==> %s\n' "$*"; }

# The packages one command needs, missing from this machine.
missing() {
	local need=()
	command -v prosody >/dev/null || need+=(prosody)
	python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
	if [[ $1 == test ]]; then
		dpkg -s lua-unbound >/dev/null 2>&1 || need+=(lua-unbound)
		compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
		command -v ejabberdctl >/dev/null || need+=(ejabberd)
		command -v chromium >/dev/null || need+=(chromium)
		command -v runuser >/dev/null && command -v unshare >/dev/null || need+=(util-linux)
		command -v ip >/dev/null || need+=(iproute2)
		[[ -x /usr/bin/libervia-cli ]] || need+=(libervia-cli)  # brings libervia-backend
		command -v dbus-daemon >/dev/null || need+=(dbus-daemon)  # Libervia's private D-Bus session
	fi
	echo "${need[@]}"
}

install_debian() {
	local need
	read -r -a need <<<"$(missing "$1")"
	((${#need[@]})) || return 0
	[[ $EUID -eq 0 ]] || { echo "setup.sh: run as root to install: ${need[*]}" >&2; exit 1; }
	say "installing Debian packages: ${need[*]}"
	# A package's maintainer scripts start its system service on the default ports.
	# Hold that back (policy-rc.d exit 101: "action forbidden", honoured by invoke-rc.d
	# and deb-systemd-invoke) so that nothing needs stopping afterwards. An existing
	# policy-rc.d is the admin's: it is used as it is and left in place.
	local policy=/usr/sbin/policy-rc.d own_policy=""
	if [[ ! -e $policy ]]; then
		own_policy=1
		printf '#!/bin/sh\n# xmppblog setup.sh: installing packages, services held back\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		# Removed however this ends (error, Ctrl-C, a dropped SSH session): left behind, it
		# would keep every later package upgrade on this machine from restarting its service.
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		trap 'exit 130' INT TERM HUP
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || { echo "setup.sh: apt-get update failed" >&2; exit 1; }
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
		|| { echo "setup.sh: apt-get install ${need[*]} failed" >&2; exit 1; }
	if [[ -n $own_policy ]]; then  # now, not at exit: `run` and `test` end in exec, which skips EXIT traps
		rm -f "$policy"
		trap - EXIT INT TERM HUP
	fi
	hold_back_at_boot "${need[@]}"
}

# The services of packages installed just now would start at the next boot on the
# default ports; they were not running before, so they stay off until the admin
# enables them. Services that were already installed are not touched.
hold_back_at_boot() {
	local pkg unit held=()
	for pkg in "$@"; do
		case "$pkg" in prosody | ejabberd | postgresql) unit=$pkg ;; *) continue ;; esac
		if [[ -d /run/systemd/system ]]; then
			systemctl disable --quiet "$unit" 2>/dev/null && held+=("$unit")
		elif command -v update-rc.d >/dev/null; then
			update-rc.d "$unit" disable >/dev/null 2>&1 && held+=("$unit")
		fi
	done
	if ((${#held[@]})); then
		say "installed but not started, now or at boot: ${held[*]} (the demo and the tests run their own;" \
			"enable one with: systemctl enable --now NAME)"
	fi
}

install_python() {
	python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "setup.sh: Python 3.11 or newer is required" >&2; exit 1; }
	if [[ ! -x "$VENV/bin/python" ]]; then
		say "creating virtualenv $VENV"
		python3 -m venv "$VENV"
	fi
	say "installing xmppblog and its Python dependencies"
	"$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
	"$VENV/bin/pip" install -q -e ".[test]" >"$VENV/pip-install.log" 2>&1 \
		|| { cat "$VENV/pip-install.log" >&2; echo "setup.sh: pip install failed" >&2; exit 1; }
}

cmd="${1:-}"
case "$cmd" in
	deps)
		install_debian test; install_python ;;
	test)
		install_debian test; install_python
		shift
		say "running the test suite"
		exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@" ;;
	run)
		install_debian run; install_python
		exec "$ROOT/scripts/demo.sh" ;;
	*)
		sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
