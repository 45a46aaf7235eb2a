#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   formatting, clippy, unit and integration tests, and the cluster tests against the real
#   local control plane, which is started here (built on first use) and stopped again afterwards
#   if this script started it. Set M2M_KEEP_CLUSTER=1 to leave it running.
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
need_cargo

started_at=$SECONDS

step "control plane"
started_cluster=0
hack/cluster.sh status >/dev/null 2>&1 || started_cluster=1
stop_cluster() {
  if [ "$started_cluster" = 1 ] && [ -z "${M2M_KEEP_CLUSTER:-}" ]; then
    hack/cluster.sh down
  fi
}
trap stop_cluster EXIT
hack/cluster.sh up >/dev/null
eval "$(hack/cluster.sh env)"

step "Helm chart, deploy/m2m-operator.yaml, server-side dry-runs (hack/chart.sh check)"
hack/chart.sh check

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (the whole workspace: all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

step "unit and integration tests (no cluster)"
cargo test --quiet

step "fuzzing: a short run of every target (hack/fuzz.sh 600 for a real one)"
hack/fuzz.sh "${M2M_FUZZ_SECONDS:-20}"

step "cluster tests against $(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n1) at $KUBECONFIG"
# Serially: tests start and stop their own operator processes, and two operators with
# different leases would both write.
# With debug logging; every secret, hash and token the tests see is recorded for the leak scan.
export M2M_LEAK_DIR
M2M_LEAK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/m2m-leak-scan.XXXXXX")
M2M_TEST_LOG=${M2M_TEST_LOG:-debug,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info} \
  cargo test --quiet --features cluster-tests --test cluster -- --test-threads=1

step "leak scan: no secret, hash or token in any log, Event, status or error body"
hack/leak-scan.sh "$M2M_LEAK_DIR"
rm -rf "$M2M_LEAK_DIR"

step "every command of the README and docs/, as written (hack/docs-check.sh)"
hack/docs-check.sh

step "all tests passed in $((SECONDS - started_at))s"
