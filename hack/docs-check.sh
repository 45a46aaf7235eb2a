#!/usr/bin/env bash
# Runs the commands of the docs as written, so they cannot rot.
#
# Every ```sh block in README.md, docs/, charts/*/README.md and examples/ must be preceded by a
# marker line saying how it is checked:
#   <!-- docs-check: local -->          run in the repository root, no cluster needed
#   <!-- docs-check: demo -->           run against the demo: a control plane of its own (other
#                                       ports, state in a temp dir), `hack/demo.sh` run first,
#                                       CLIENT_ID, CLIENT_SECRET, TOKEN_URL of tenant-acme/flags-agent
#                                       and KUBECONFIG exported; `hack/demo.sh stop` run last
#   <!-- docs-check: skip REASON -->    not run here, for the reason given
# An unmarked block fails the check. Blocks run in file order, each in its own `bash -euo pipefail`.
#
#   hack/docs-check.sh          check everything
#   hack/docs-check.sh --list   show each block with its file, line and mode
#
# Environment: the demo's own ports, all on 127.0.0.1: M2M_DOCS_ETCD_PORT (23890; its peer port
# is 10 above), M2M_DOCS_APISERVER_PORT (26543), M2M_DOCS_TOKEN_PORT (18180), M2M_DOCS_ADMIN_PORT
# (18181); they differ from those of hack/cluster.sh and hack/demo.sh, so a running demo or test
# plane is not disturbed.
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
need_cargo

WORK=$(mktemp -d "${TMPDIR:-/tmp}/m2m-docs-check.XXXXXX")
BLOCKS=$WORK/blocks
mkdir -p "$BLOCKS"

mapfile -t FILES < <(ls README.md docs/*.md charts/*/README.md 2>/dev/null; find examples -name '*.md' | sort)

# Splits every file into blocks: $BLOCKS/NNNN.sh, with a manifest line "mode<TAB>file:line<TAB>path".
n=0
for f in "${FILES[@]}"; do
  awk -v file="$f" -v dir="$BLOCKS" -v start="$n" '
    /^<!-- docs-check: .* -->$/ {
      mark = $0; sub(/^<!-- docs-check: /, "", mark); sub(/ -->$/, "", mark); marked_at = NR; next
    }
    /^```sh$/ && !in_block {
      in_block = 1; count++
      mode = (marked_at == NR - 1) ? mark : "UNMARKED"
      path = sprintf("%s/%04d.sh", dir, start + count)
      printf "%s\t%s:%d\t%s\n", mode, file, NR, path
      printf "" > path
      next
    }
    /^```$/ && in_block { in_block = 0; close(path); next }
    in_block { print > path }
    END { if (in_block) { printf "UNCLOSED\t%s:end\t-\n", file } }
  ' "$f" >>"$WORK/manifest"
  n=$(wc -l <"$WORK/manifest")
done
touch "$WORK/manifest"

if [ "${1:-}" = --list ]; then
  awk -F'\t' '{ printf "%-60s %s\n", $2, $1 }' "$WORK/manifest"
  rm -rf "$WORK"
  exit 0
fi

bad=$(awk -F'\t' '$1 !~ /^(local|demo|skip .+)$/ { print "  " $2 ": " $1 }' "$WORK/manifest")
[ -z "$bad" ] || die "blocks without a valid docs-check marker (local | demo | skip REASON):
$bad"

# run_blocks MODE: runs every block of that mode, in order; prints the output of a failing one.
ran=0
run_blocks() {
  local mode=$1 line where path
  while IFS=$'\t' read -r line where path; do
    [ "$line" = "$mode" ] || continue
    printf '  %s\n' "$where"
    [ "$mode" = demo ] && demo_credentials
    if ! (bash -euo pipefail "$path" >"$WORK/out" 2>&1 </dev/null); then
      printf '\n--- %s failed; the block:\n' "$where" >&2
      cat "$path" >&2
      printf -- '--- its output:\n' >&2
      tail -n 40 "$WORK/out" >&2
      exit 1
    fi
    ran=$((ran + 1))
  done <"$WORK/manifest"
}

step "blocks that need no cluster"
run_blocks local

step "the demo on a control plane of its own"
export M2M_CLUSTER_DIR=$WORK/cluster M2M_ETCD_PORT=${M2M_DOCS_ETCD_PORT:-23890}
export M2M_APISERVER_PORT=${M2M_DOCS_APISERVER_PORT:-26543}
export M2M_DEMO_TOKEN_ADDR=127.0.0.1:${M2M_DOCS_TOKEN_PORT:-18180}
export M2M_DEMO_ADMIN_ADDR=127.0.0.1:${M2M_DOCS_ADMIN_PORT:-18181}
cleanup() {
  hack/demo.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
hack/demo.sh >"$WORK/demo.out" 2>&1 || { tail -n 40 "$WORK/demo.out" >&2; die "hack/demo.sh failed"; }
grep -q '"org_code":"org_123"' "$WORK/demo.out" || die "the demo printed no token with org_code"
eval "$(hack/cluster.sh env)"
export KUBECONFIG PATH
# Read before every block: an earlier block may have rotated the secret.
demo_credentials() {
  local key
  for key in client_id client_secret token_url; do
    export "${key^^}=$(secret_value tenant-acme flags-agent-credentials "$key")"
  done
}
run_blocks demo
hack/demo.sh stop >/dev/null

skipped=$(grep -c $'^skip ' "$WORK/manifest" || true)
step "docs-check: $ran blocks ran and passed, $skipped skipped with a reason (hack/docs-check.sh --list)"
