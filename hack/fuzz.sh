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
# use. The corpus grows in $FUZZ/fuzz-corpus; a crash fails the run and leaves its input in
# $FUZZ/fuzz-artifacts/<target>/: fix the bug, then copy the input into
# fuzz/regressions/<target>/ so `cargo test` (tests/fuzz_regressions.rs) replays it forever.
#
# Environment: M2M_FUZZ_DIR ($FUZZ above: the instrumented build, corpus and artifacts; default
# $M2M_CACHE_DIR, ~/.cache/m2m-operator), so that two clones fuzzing at once need not share them.
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
need_cargo

CARGO_FUZZ_VERSION=0.13.1
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(token_request duration crd_spec)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "installing the nightly toolchain (minimal profile; libFuzzer needs it)"
  rustup toolchain install nightly --profile minimal >/dev/null
fi
FUZZ=${M2M_FUZZ_DIR:-$M2M_CACHE_DIR}
mkdir -p "$FUZZ"
TOOLS=$M2M_CACHE_DIR/tools
export PATH=$TOOLS/bin:$PATH
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS (about 2 minutes, once)"
  cargo install --quiet --locked --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# Its own target dir: instrumented builds must not evict the operator's.
export CARGO_TARGET_DIR=$FUZZ/fuzz-target

cd fuzz
log "building the fuzz targets (cold: about 5 minutes on 2 cores)"
if ! cargo +nightly fuzz build --sanitizer none --release >"$FUZZ/fuzz-build.log" 2>&1; then
  tail -n 30 "$FUZZ/fuzz-build.log" >&2
  die "building the fuzz targets failed"
fi
for target in "${TARGETS[@]}"; do
  corpus=$FUZZ/fuzz-corpus/$target
  artifacts=$FUZZ/fuzz-artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  log "$target for ${SECONDS_PER_TARGET}s"
  # Rust is memory-safe here (unsafe_code = forbid), so no sanitizer: panics and assertion
  # failures are what we look for. Seeds and kept regressions are read, never written.
  if ! cargo +nightly fuzz run --sanitizer none --release "$target" \
      "$corpus" "seeds/$target" "regressions/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -artifact_prefix="$artifacts/" \
      -print_final_stats=1 >"$artifacts/last-run.log" 2>&1; then
    tail -n 30 "$artifacts/last-run.log" >&2
    die "$target crashed; input saved under $artifacts/"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$artifacts/last-run.log" | tail -n1)
  log "$target: ${runs:-?} executions in ${SECONDS_PER_TARGET}s, no crash (corpus: $(find "$corpus" -type f | wc -l) inputs)"
done
