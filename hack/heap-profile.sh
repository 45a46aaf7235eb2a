#!/usr/bin/env bash
# A heap profile of the operator through the memory benchmark: which allocation sites hold the
# memory that is live at the end of each operator run (the leader that issued the apps, and the
# restarted process). Runs `hack/bench.sh memory "$@"` with the operator built on glibc malloc
# (feature `system-allocator`: heaptrack interposes malloc, not jemalloc) under heaptrack's
# preload library; each run is ended with SIGKILL so that what it held at that moment is what
# heaptrack reports as not freed. Figures of this run are not the benchmark's (another allocator,
# and the RSS read is the wrapper's): the table goes to the profile folder, not into the docs.
#
#   hack/heap-profile.sh [--sizes 10000] [--apps-per-org 10]
#
# Output: $M2M_HEAP_PROFILE_DIR (default ${TMPDIR:-/tmp}/m2m-heap-profile)/run-<pid>.txt, the
# heaptrack_print summary of each operator run (top sites by memory not freed), and run-<pid>.stacks
# (one line per backtrace and its bytes not freed, for grep or a flame graph).
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
need_cargo
need heaptrack "install heaptrack (Debian: apt-get install heaptrack) for a heap profile"
OUT=${M2M_HEAP_PROFILE_DIR:-${TMPDIR:-/tmp}/m2m-heap-profile}
rm -rf "$OUT" && mkdir -p "$OUT"
HT_LIB=$(dirname "$(readlink -f "$(command -v heaptrack)")")/../lib/heaptrack
PRELOAD=$(readlink -f "$HT_LIB/libheaptrack_preload.so")
INTERPRET=$(readlink -f "$HT_LIB/libexec/heaptrack_interpret")
log "building the operator with glibc malloc (feature system-allocator)"
cargo build --quiet --release -p m2m-operator --bin m2m-operator --features system-allocator
cp "$CARGO_TARGET_DIR/release/m2m-operator" "$OUT/m2m-operator"
# The wrapper the benchmark starts: the operator as a child under heaptrack's preload library,
# killed (not terminated: no orderly teardown that frees the caches) when the benchmark stops it.
cat >"$OUT/operator" <<WRAPPER
#!/usr/bin/env bash
LD_PRELOAD=$PRELOAD DUMP_HEAPTRACK_OUTPUT=$OUT/raw.\$\$ "$OUT/m2m-operator" "\$@" &
child=\$!
trap 'kill -KILL \$child' TERM INT
wait \$child
wait \$child
WRAPPER
chmod +x "$OUT/operator"
M2M_OPERATOR_BIN=$OUT/operator hack/bench.sh memory --write "$OUT/memory.md" "$@"
for raw in "$OUT"/raw.*; do
  run=$OUT/run-${raw##*.}
  "$INTERPRET" <"$raw" | gzip >"$run.gz"
  heaptrack_print --print-leaks 1 --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    -n 40 -F "$run.stacks" --flamegraph-cost-type leaked "$run.gz" >"$run.txt" 2>&1 || true
  rm -f "$raw"
  log "heap profile: $run.txt"
done
