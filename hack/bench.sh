#!/usr/bin/env bash
# Benchmarks (not tests). Installs the load generators (oha from crates.io into the cache, wrk
# from Debian's packages) on first use, builds the release benchmark binary and runs a scenario; results are printed and
# written into docs/benchmarks.md.
#
#   hack/bench.sh token [--apps N] [--rounds R] [--seconds S] [--connections C]
#   hack/bench.sh flood [--apps N] [--seconds S] [--connections C] [--rate R]
#   hack/bench.sh reconcile [--apps N] [--orgs M] [--concurrency C]
#   hack/bench.sh memory [--sizes 1000,10000] [--apps-per-org K] [--after-event-cache]
#   hack/bench.sh propagation [--trials N]
#   hack/bench.sh coldstart [--apps N] [--clients K]
#   hack/bench.sh peer [--rounds R] [--seconds S] [--connections C]   (builds Ory Hydra v2.3.0)
#   hack/bench.sh index [--apps N] [--apps-per-org K]   (no API server: the in-memory parts at scale)
#   hack/bench.sh keyless [--rounds R] [--seconds S] [--connections C]   (ServiceAccount token vs secret)
#
# The cluster scenarios (reconcile, memory, propagation, coldstart, keyless) run against a control plane
# of their own, started fresh for each run on dedicated ports and state (never the test plane
# of hack/test.sh) and stopped afterwards, with the release m2m-operator binary as a process.
# M2M_BENCH_KEEP_PLANE=1 leaves that plane running (for a look with kubectl afterwards; stop
# it with `M2M_CLUSTER_DIR=${TMPDIR:-/tmp}/m2m-bench-cluster hack/cluster.sh down`).
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
need_cargo
OHA_VERSION=1.16.0
TOOLS=$M2M_CACHE_DIR/tools
if [ ! -x "$TOOLS/bin/oha" ]; then
  log "installing oha $OHA_VERSION (load generator) into $TOOLS (a few minutes, once)"
  cargo install --quiet --locked --root "$TOOLS" --version "$OHA_VERSION" oha
fi
export M2M_OHA=$TOOLS/bin/oha
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing wrk (load generator) from Debian's packages"
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
  else
    log "wrk not found: peak runs use oha instead (install wrk for the documented figures)"
    export M2M_WRK=
  fi
fi
# One build for both binaries: the operator the cluster scenarios run sits next to the bench.
cargo build --quiet --release -p m2m-bench -p m2m-operator --bin m2m-bench --bin m2m-operator
BENCH=$CARGO_TARGET_DIR/release/m2m-bench
export M2M_OPERATOR_BIN=${M2M_OPERATOR_BIN:-$CARGO_TARGET_DIR/release/m2m-operator}

# The peer: Ory Hydra v2.3.0 from the Go module proxy (a tool module), built once into the
# cache. A consumer module must repeat Hydra's own replace line for pop, and its in-memory
# store (DSN=memory) is SQLite, which needs cgo and the sqlite build tag.
HYDRA_VERSION=v2.3.0
build_hydra() {
  local dir=$M2M_CACHE_DIR/tools/hydra-$HYDRA_VERSION
  [ -x "$dir/hydra" ] && { echo "$dir/hydra"; return; }
  need go "install Go to build Ory Hydra for hack/bench.sh peer"
  log "building Ory Hydra $HYDRA_VERSION into $dir (a few minutes, once)"
  rm -rf "$dir/src" && mkdir -p "$dir/src"
  (
    cd "$dir/src"
    export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
    go mod init m2m-operator.local/hydra-peer >/dev/null 2>&1
    go mod edit -replace github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
    go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION" >/dev/null 2>&1
    CGO_ENABLED=1 go build -tags sqlite -o "$dir/hydra" github.com/ory/hydra/v2
  ) >&2 || die "building Ory Hydra $HYDRA_VERSION failed"
  echo "$dir/hydra"
}

case "${1:-}" in
  peer)
    shift
    exec "$BENCH" peer --hydra "$(build_hydra)" "$@"
    ;;
  reconcile | memory | propagation | coldstart | keyless) ;;
  *) exec "$BENCH" "$@" ;;
esac

# The bench plane: its own state folder and ports (the test plane uses .cluster, 23790, 26443).
export M2M_CLUSTER_DIR=${M2M_BENCH_CLUSTER_DIR:-${TMPDIR:-/tmp}/m2m-bench-cluster}
export M2M_ETCD_PORT=${M2M_BENCH_ETCD_PORT:-24790}
export M2M_APISERVER_PORT=${M2M_BENCH_APISERVER_PORT:-27443}
stop_plane() { hack/cluster.sh down >/dev/null 2>&1 || true; }
# Fresh state every run: `up` on a stopped plane starts with an empty etcd.
stop_plane
hack/cluster.sh up >/dev/null
if [ "${M2M_BENCH_KEEP_PLANE:-}" != 1 ]; then
  trap stop_plane EXIT
fi
export KUBECONFIG=$M2M_CLUSTER_DIR/kubeconfig
"$BENCH" "$@"
