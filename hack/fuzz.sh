#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with cargo-fuzz (libFuzzer), each target for a bounded time.
#
#   hack/fuzz.sh                 every target for 60 s
#   hack/fuzz.sh 600             every target for 10 minutes
#   hack/fuzz.sh 30 duration     one target for 30 s
#
# Targets (bodies in src/fuzzing.rs): token_request (Authorization header + form body: client
# authentication, scope, audience/resource), duration, crd_spec (M2MApp / Organization JSON).
# Installs the nightly toolchain (rustup, minimal profile) and cargo-fuzz (into the cache) on first
# use. The corpus grows in $M2M_CACHE_DIR/fuzz-corpus; a crash fails the run and leaves its input
# in $M2M_CACHE_DIR/fuzz-artifacts/<target>/: fix the bug, then copy the input into
# fuzz/regressions/<target>/ so `cargo test` (tests/fuzz_regressions.rs) replays it forever.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=hack/common.sh
source hack/common.sh

CARGO_FUZZ_VERSION=0.13.1
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(token_request duration crd_spec)

log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "installing the nightly toolchain (minimal profile; libFuzzer needs it)"
  rustup toolchain install nightly --profile minimal >/dev/null
fi
TOOLS=$M2M_CACHE_DIR/tools
export PATH=$TOOLS/bin:$PATH
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS (about 2 minutes, once)"
  cargo install --quiet --locked --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# Its own target dir: instrumented builds must not evict the operator's.
export CARGO_TARGET_DIR=$M2M_CACHE_DIR/fuzz-target

cd fuzz
log "building the fuzz targets (cold: about 5 minutes on 2 cores)"
if ! cargo +nightly fuzz build --sanitizer none --release >"$M2M_CACHE_DIR/fuzz-build.log" 2>&1; then
  tail -n 30 "$M2M_CACHE_DIR/fuzz-build.log" >&2
  log "error: building the fuzz targets failed"
  exit 1
fi
for target in "${TARGETS[@]}"; do
  corpus=$M2M_CACHE_DIR/fuzz-corpus/$target
  artifacts=$M2M_CACHE_DIR/fuzz-artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  log "$target for ${SECONDS_PER_TARGET}s"
  # Rust is memory-safe here (unsafe_code = forbid), so no sanitizer: panics and assertion
  # failures are what we look for. Seeds and kept regressions are read, never written.
  if ! cargo +nightly fuzz run --sanitizer none --release "$target" \
      "$corpus" "seeds/$target" "regressions/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -artifact_prefix="$artifacts/" \
      -print_final_stats=1 >"$artifacts/last-run.log" 2>&1; then
    tail -n 30 "$artifacts/last-run.log" >&2
    log "error: $target crashed; input saved under $artifacts/"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$artifacts/last-run.log" | tail -n1)
  log "$target: ${runs:-?} executions in ${SECONDS_PER_TARGET}s, no crash (corpus: $(find "$corpus" -type f | wc -l) inputs)"
done
