#!/usr/bin/env bash
# The main job, end to end: start the local control plane (unless --use-kubeconfig), install the
# CRDs, run the operator, apply examples/ and show the result.
#
#   hack/demo.sh                   local control plane from hack/cluster.sh
#   hack/demo.sh --use-kubeconfig  the cluster of your current KUBECONFIG instead
#   hack/demo.sh stop              stop the operator and the local control plane
#
# Environment: M2M_DEMO_TOKEN_ADDR (127.0.0.1:18080), M2M_DEMO_ADMIN_ADDR (127.0.0.1:18081), and
# those of hack/cluster.sh (M2M_CLUSTER_DIR, M2M_ETCD_PORT, M2M_APISERVER_PORT).
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
need_cargo
OPERATOR_PID=$STATE/operator.pid
ADMIN_ADDR=${M2M_DEMO_ADMIN_ADDR:-127.0.0.1:18081}
TOKEN_ADDR=${M2M_DEMO_TOKEN_ADDR:-127.0.0.1:18080}
ISSUER=${M2M_ISSUER:-http://$TOKEN_ADDR}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
stop_operator() { stop_process m2m-operator "$OPERATOR_PID" m2m-operator; }

case "${1:-}" in
  stop)
    stop_operator
    hack/cluster.sh down
    exit 0
    ;;
  --use-kubeconfig)
    [ -n "${KUBECONFIG:-}" ] || [ -f "$HOME/.kube/config" ] || die "no KUBECONFIG and no ~/.kube/config"
    say "using the cluster of your kubeconfig ($(kubectl config current-context))"
    ;;
  "")
    say "starting the local control plane (the first run builds it: about 12 minutes on 2 cores, with progress)"
    hack/cluster.sh up >/dev/null
    eval "$(hack/cluster.sh env)"
    ;;
  *)
    echo "usage: $0 [--use-kubeconfig | stop]" >&2
    exit 2
    ;;
esac
mkdir -p "$STATE"

say "building m2m-operator"
with_progress "m2m-operator (cargo build)" "5-8 minutes" cargo build --quiet --bin m2m-operator
BIN=$CARGO_TARGET_DIR/debug/m2m-operator

say "installing the CRDs (server-side apply)"
kubectl apply --server-side --field-manager=m2m-operator-demo -f crds/
kubectl wait --for=condition=Established --timeout=60s crd/organizations.m2m.dev crd/m2mapps.m2m.dev >/dev/null

say "starting the operator (logs: $STATE/operator.log)"
stop_operator
kubectl create namespace m2m-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# Global apps (the examples' platform automation) only in the platform namespace.
spawn "$OPERATOR_PID" "$STATE/operator.log" env M2M_ADMIN_ADDR="$ADMIN_ADDR" M2M_TOKEN_ADDR="$TOKEN_ADDR" \
  M2M_ISSUER="$ISSUER" M2M_NAMESPACE=m2m-system M2M_GLOBAL_APP_NAMESPACES=m2m-system,platform \
  M2M_LOG_FORMAT=text "$BIN" run
# By PID alone: until setsid has exec'd the operator, the process's command line is this script's.
operator_ready() {
  running "$(cat "$OPERATOR_PID")" || { tail -n 20 "$STATE/operator.log" >&2; die "the operator exited"; }
  curl -sf -o /dev/null "http://$ADMIN_ADDR/readyz"
}
wait_for 30 operator_ready || die "the operator did not become ready"

say "applying examples/"
kubectl apply --server-side --field-manager=m2m-operator-demo -f examples/
kubectl wait --for=condition=Ready --timeout=60s -n tenant-acme m2mapp/flags-agent >/dev/null
kubectl wait --for=condition=Ready --timeout=60s -n platform m2mapp/billing-sync >/dev/null
kubectl get org,m2m -A

decode() { printf '%s' "$1" | b64url_decode; } # JWT part -> JSON
secret_key() { secret_value "$1" "$2-credentials" "$3"; } # namespace app key
token_status() { # client_id client_secret -> HTTP status of a token request
  curl -s -o /dev/null -w '%{http_code}' -u "$1:$2" -d grant_type=client_credentials "http://$TOKEN_ADDR/oauth2/token"
}
show_token() { # namespace app
  local id secret response token
  id=$(secret_key "$1" "$2" client_id)
  secret=$(secret_key "$1" "$2" client_secret)
  response=$(curl -s -u "$id:$secret" -d grant_type=client_credentials "http://$TOKEN_ADDR/oauth2/token")
  token=$(printf '%s' "$response" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || die "no token for $1/$2: $response"
  echo "header:  $(decode "${token%%.*}")"
  local rest=${token#*.}
  echo "payload: $(decode "${rest%%.*}")"
}
say "a token for the org-scoped app tenant-acme/flags-agent (curl with the Secret's credentials)"
show_token tenant-acme flags-agent
say "a token for the global app platform/billing-sync (no org_code)"
show_token platform billing-sync

say "rotating the secret of tenant-acme/flags-agent: old and new both work during the grace period"
id=$(secret_key tenant-acme flags-agent client_id)
old=$(secret_key tenant-acme flags-agent client_secret)
revision() { kubectl get m2mapp -n tenant-acme flags-agent -o jsonpath='{.status.rotation.revision}'; }
old_revision=$(revision)
kubectl annotate m2mapp -n tenant-acme flags-agent "m2m.dev/rotate=demo-$(date +%s)" --overwrite >/dev/null
new=$old
secret_changed() { new=$(secret_key tenant-acme flags-agent client_secret) && [ "$new" != "$old" ]; }
wait_for 30 secret_changed || die "the Secret did not get a new client_secret within 30s"
revision_changed() { [ "$(revision)" != "$old_revision" ]; }
wait_for 10 revision_changed || true
echo "client_id unchanged: $id"
echo "old client_secret -> HTTP $(token_status "$id" "$old") (accepted until the grace period ends)"
echo "new client_secret -> HTTP $(token_status "$id" "$new")"
kubectl get m2mapp -n tenant-acme flags-agent \
  -o jsonpath='status: revision {.status.rotation.revision}, previous secret accepted until {.status.rotation.previousSecretExpiresAt}{"\n"}'

say "done"
cat <<MSG
Left running in the background:
  m2m-operator (pid $(cat "$OPERATOR_PID")): tokens at http://$TOKEN_ADDR/oauth2/token, JWKS at
    http://$TOKEN_ADDR/.well-known/jwks.json, health and metrics at http://$ADMIN_ADDR, log $STATE/operator.log
MSG
if [ "${1:-}" != --use-kubeconfig ]; then
  echo "  the local control plane (etcd, kube-apiserver, kube-controller-manager): KUBECONFIG=$KUBECONFIG"
fi
cat <<MSG
Try: export KUBECONFIG=$KUBECONFIG; kubectl get org,m2m -A; kubectl describe m2mapp -n tenant-acme flags-agent
Stop everything: hack/demo.sh stop
MSG
