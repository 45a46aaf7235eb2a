#!/usr/bin/env bash
# Benchmarks (not tests). Installs the load generators (oha from crates.io into the cache, wrk
# from Debian's packages) on first use, builds the release benchmark binary and runs a scenario; results are printed and
# written into docs/benchmarks.md.
#
#   hack/bench.sh token [--apps N] [--seconds S] [--connections C]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=hack/common.sh
source hack/common.sh
OHA_VERSION=1.16.0
TOOLS=$M2M_CACHE_DIR/tools
if [ ! -x "$TOOLS/bin/oha" ]; then
  echo "[bench] installing oha $OHA_VERSION (load generator) into $TOOLS (a few minutes, once)" >&2
  cargo install --quiet --locked --root "$TOOLS" --version "$OHA_VERSION" oha
fi
export M2M_OHA=$TOOLS/bin/oha
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[bench] installing wrk (load generator) from Debian's packages" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
  else
    echo "[bench] wrk not found: peak runs use oha instead (install wrk for the documented figures)" >&2
    export M2M_WRK=
  fi
fi
cargo build --quiet --release --features bench --bin m2m-bench
exec "$CARGO_TARGET_DIR/release/m2m-bench" "$@"
