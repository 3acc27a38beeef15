#!/usr/bin/env bash
# Installs schemathesis from PyPI for tests/fuzz_openapi.rs, at the version the test was
# written against, only if that version is not already there. Uses the same python3 as the
# test (WEALTHCOACH_FUZZ_PYTHON overrides both).
set -euo pipefail

VERSION=4.32.5
PY="${WEALTHCOACH_FUZZ_PYTHON:-python3}"

have="$("$PY" -c 'import importlib.metadata as m, schemathesis; print(m.version("schemathesis"))' 2>/dev/null || true)"
if [[ "$have" == "$VERSION" ]]; then
	echo "fuzz-deps: schemathesis $VERSION is installed"
	exit 0
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
	echo "fuzz-deps: installing python3-pip"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends python3-pip
fi
echo "fuzz-deps: installing schemathesis $VERSION${have:+ (found $have)}"
# Debian's own python3 refuses system-wide installs unless told (PEP 668); pyenv's does not
# know the flag's reason and ignores it.
"$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages \
	"schemathesis==$VERSION" 2>/dev/null ||
	"$PY" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
"$PY" -c 'import importlib.metadata as m; print("fuzz-deps: schemathesis", m.version("schemathesis"))'
