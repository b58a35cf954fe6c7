#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# One entry point for a fresh Debian 12 machine (run as root):
#
#   scripts/setup.sh run    install everything, start a local Prosody on loopback
#                           and xmppblog on its embedded defaults (SQLite)
#   scripts/setup.sh test   install everything and run the whole test suite
#   scripts/setup.sh deps   only install (Debian packages + Python venv in .venv)
#
# Debian packages: prosody + lua-unbound (host server for the demo and the
# end-to-end tests), ejabberd (interop tests), chromium (page tests),
# postgresql (the PostgreSQL test lane), python3-venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XMPPBLOG_VENV:-$ROOT/.venv}"
cd "$ROOT"

say() { printf '\n==> %s\n' "$*"; }

install_debian() {
	local need=()
	command -v prosody >/dev/null || need+=(prosody)
	dpkg -s lua-unbound >/dev/null 2>&1 || need+=(lua-unbound)
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
	command -v ejabberdctl >/dev/null || need+=(ejabberd)
	command -v chromium >/dev/null || need+=(chromium)
	command -v runuser >/dev/null || need+=(util-linux)
	python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
	if ((${#need[@]})); then
		[[ $EUID -eq 0 ]] || { echo "setup.sh: run as root to install: ${need[*]}" >&2; exit 1; }
		say "installing Debian packages: ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
	# A package installed just now starts its system service on the default ports;
	# the demo and the tests run their own instances on loopback, so stop the
	# services this run started. Anything that was there before is left alone.
	local pkg
	for pkg in "${need[@]}"; do
		case "$pkg" in
			prosody | ejabberd) service "$pkg" stop >/dev/null 2>&1 || true ;;
		esac
	done
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
		install_debian; install_python ;;
	test)
		install_debian; install_python
		shift
		say "running the test suite"
		exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@" ;;
	run)
		install_debian; install_python
		exec "$ROOT/scripts/demo.sh" ;;
	*)
		sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
