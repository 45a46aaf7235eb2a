#!/usr/bin/env bash
# Benchmarks (not tests). Installs the load generator (oha, from crates.io) into the cache on
# first use, builds the release benchmark binary and runs a scenario; results are printed and
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
cargo build --quiet --release --features bench --bin m2m-bench
exec "$CARGO_TARGET_DIR/release/m2m-bench" "$@"
