#!/usr/bin/env bash
# The leak scan: searches what the cluster tests saved (hack/test.sh sets M2M_LEAK_DIR) for any
# secret, hash or token issued during the run.
#
#   hack/leak-scan.sh DIR
#
# DIR/watch    every client_secret, argon2id hash, access token, ServiceAccount token and client
#              assertion the tests saw, one per line
# DIR/logs/    every operator process's log (the suite runs with debug logging)
# DIR/bodies   every error response body
# DIR/objects/ Events and statuses of every test namespace and Organization, saved before deletion
# Besides the exact values, the scan also fails on anything shaped like a client secret
# (m2msec_...), a PHC argon2id hash or a JWT in the logs, bodies or objects.
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DIR=${1:?usage: hack/leak-scan.sh DIR}

[ -s "$DIR/watch" ] || die "no secrets, hashes or tokens were recorded in $DIR/watch: the scan would prove nothing"
[ -d "$DIR/logs" ] || die "no operator logs under $DIR/logs"
sort -u "$DIR/watch" >"$DIR/watch.unique"
targets=("$DIR/logs" "$DIR/objects")
[ -f "$DIR/bodies" ] && targets+=("$DIR/bodies")

found=0
if hits=$(grep -rlF -f "$DIR/watch.unique" "${targets[@]}"); then
  log "a watched value appears in:"$'\n'"$hits"
  found=1
fi
shapes='m2msec_[A-Za-z0-9_-]{20,}|\$argon2id\$v=|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}'
if hits=$(grep -rnoE "$shapes" "${targets[@]}" | cut -c1-160 | head -n 20); then
  log "something shaped like a secret, hash or token appears at:"$'\n'"$hits"
  found=1
fi
[ "$found" = 0 ] || die "secrets leaked (see above)"

values=$(wc -l <"$DIR/watch.unique")
lines=$(cat "$DIR"/logs/* | wc -l)
objects=$(find "$DIR/objects" -type f 2>/dev/null | wc -l)
bodies=$( [ -f "$DIR/bodies" ] && wc -l <"$DIR/bodies" || echo 0)
log "clean: $values secrets/hashes/tokens searched for in $lines log lines of $(find "$DIR/logs" -type f | wc -l) operator runs, $bodies error bodies, $objects saved Event/status dumps"
