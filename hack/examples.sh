#!/usr/bin/env bash
# Checks examples/ against a cluster where the operator runs and examples/ is applied (as after
# hack/demo.sh): the workload's script gets tokens with nothing but a Secret's files, the Python
# API verifies them, and the workload's manifest is what the API server accepts.
#
#   hack/examples.sh     uses $KUBECONFIG, else the local control plane's (hack/cluster.sh env)
#
#  1. tenant-acme/flags-agent: every key of its Secret written to a temp dir as a file (as the
#     volume mount has them), examples/workload/get-token.sh run once with M2M_SECRET_DIR there
#  2. examples/verify-api/verify.py on that token (venv in $M2M_CACHE_DIR/venv-verify-api, made
#     again when requirements.txt or python3 changes): org_code org_123, the Secret's scope and
#     client_id; the same token with its org_code edited is refused
#  3. platform/billing-sync, a global app: verified, no org_code; refused by an API of another audience
#  4. the ConfigMap of examples/30-workload.yaml holds examples/workload/get-token.sh byte for byte
#  5. examples/30-workload.yaml passes a server-side dry-run, and its pod passes Pod Security
#     "restricted" (a server-side dry-run in a temporary namespace that enforces it, deleted after)
#
# Environment: M2M_CACHE_DIR (default ~/.cache/m2m-operator), PYTHON (default python3).
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
CACHE=$M2M_CACHE_DIR
VENV=$CACHE/venv-verify-api

if [ -z "${KUBECONFIG:-}" ] || ! command -v kubectl >/dev/null 2>&1; then
  kubeconfig=${KUBECONFIG:-}
  eval "$(hack/cluster.sh env)"
  KUBECONFIG=${kubeconfig:-$KUBECONFIG}
fi

checks=0
ok() { checks=$((checks + 1)); printf '  ok  %s\n' "$*"; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/m2m-examples.XXXXXX") # 0700: it holds client secrets
PSS_NAMESPACE=
cleanup() {
  [ -z "$PSS_NAMESPACE" ] || kubectl delete namespace "$PSS_NAMESPACE" --wait=false >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mount_secret() { # namespace app -> the dir holding every key of the app's Secret as a file
  local dir=$WORK/$1.$2 secret key value
  kubectl wait --for=condition=Ready --timeout=60s -n "$1" "m2mapp/$2" >/dev/null ||
    die "m2mapp $1/$2 is not Ready: is the operator running and examples/ applied (hack/demo.sh)?"
  secret=$(kubectl get m2mapp -n "$1" "$2" -o jsonpath='{.status.secretName}')
  mkdir "$dir"
  # shellcheck disable=SC2016 # a Go template, not shell
  kubectl get secret -n "$1" "$secret" \
    -o go-template='{{range $k, $v := .data}}{{$k}} {{$v}}{{"\n"}}{{end}}' >"$WORK/keys"
  while read -r key value; do printf '%s' "$value" | base64 -d >"$dir/$key"; done <"$WORK/keys"
  echo "$dir"
}
is_jwt() { [[ $1 =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; }

venv() { # (re)creates the verifier's venv when requirements.txt or the interpreter changed
  local python=${PYTHON:-python3} want
  want="$(sha256sum examples/verify-api/requirements.txt | cut -d' ' -f1) $("$python" -V 2>&1)"
  mkdir -p "$CACHE"
  exec 8>"$CACHE/venv-verify-api.lock"
  flock 8
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$want" ]; then
    echo "  ..  creating $VENV"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r examples/verify-api/requirements.txt
    echo "$want" >"$VENV/.stamp"
  fi
  exec 8>&-
}
verify() { # issuer audience token: verify.py's output; fails when verify.py does
  API_ISSUER=$1 API_AUDIENCE=$2 "$VENV/bin/python" examples/verify-api/verify.py "$3"
}

echo "==> 1. the workload's script, with the Secret of tenant-acme/flags-agent as files"
acme=$(mount_secret tenant-acme flags-agent)
token=$(M2M_SECRET_DIR=$acme sh examples/workload/get-token.sh --once) || die "get-token.sh failed"
is_jwt "$token" || die "get-token.sh printed no JWT: $token"
ok "get-token.sh --once (under sh: $(readlink -f "$(command -v sh)")) printed an access token"

echo "==> 2. the verifying API (Python, PyJWT) on that token"
venv
out=$(verify "$(cat "$acme/issuer")" https://api.example.com "$token") || die "verify.py refused the token"
printf '%s\n' "$out" | sed 's/^/      /'
grep -qx 'org_code: org_123' <<<"$out" || die "verify.py did not print org_code: org_123"
grep -qxF "scope: $(cat "$acme/scope")" <<<"$out" || die "verify.py's scope is not the Secret's ($(cat "$acme/scope"))"
grep -qxF "client_id: $(cat "$acme/client_id")" <<<"$out" || die "verify.py's client_id is not the Secret's"
ok "verify.py: signature, iss, aud, exp, typ; org_code org_123, the Secret's scope and client_id"
IFS=. read -r header payload signature <<<"$token"
forged=$header.$(b64url_decode <<<"$payload" | sed 's/"org_code":"org_123"/"org_code":"org_999"/' | b64url_encode).$signature
[ "$forged" != "$token" ] || die "could not edit the token's org_code"
if out=$(verify "$(cat "$acme/issuer")" https://api.example.com "$forged" 2>&1); then
  die "verify.py accepted a token whose org_code was edited: $out"
fi
grep -q 'invalid token' <<<"$out" || die "verify.py failed for another reason than the signature: $out"
ok "verify.py refuses the token with org_code edited to org_999 ($out)"

echo "==> 3. the global app platform/billing-sync"
platform=$(mount_secret platform billing-sync)
token=$(M2M_SECRET_DIR=$platform M2M_ONCE=1 sh examples/workload/get-token.sh) || die "get-token.sh failed"
is_jwt "$token" || die "get-token.sh printed no JWT: $token"
ok "M2M_ONCE=1 get-token.sh printed an access token"
out=$(verify "$(cat "$platform/issuer")" "$(cat "$platform/audience")" "$token") || die "verify.py refused the token"
printf '%s\n' "$out" | sed 's/^/      /'
grep -qx 'global app (no org_code)' <<<"$out" || die "verify.py did not say: global app (no org_code)"
! grep -q '^org_code' <<<"$out" || die "a global app's token carries an org_code"
ok "verify.py: global app (no org_code), audience $(cat "$platform/audience")"
if out=$(verify "$(cat "$platform/issuer")" https://api.example.com "$token" 2>&1); then
  die "an API of audience https://api.example.com accepted billing-sync's token: $out"
fi
ok "refused by the API of https://api.example.com ($out)"

echo "==> 4. the ConfigMap's script and 5. the workload manifest (server-side dry-run)"
kubectl apply --server-side --force-conflicts --dry-run=server --field-manager=m2m-examples-check \
  -f examples/30-workload.yaml -o json >"$WORK/workload.json" || die "examples/30-workload.yaml: server-side dry-run failed"
ok "examples/30-workload.yaml passes a server-side dry-run"
"$VENV/bin/python" - "$WORK/workload.json" "$WORK" <<'PY'
import json, pathlib, sys
items = json.load(open(sys.argv[1]))["items"]
work = pathlib.Path(sys.argv[2])
configmap = next(i for i in items if i["kind"] == "ConfigMap")
work.joinpath("configmap-get-token.sh").write_text(configmap["data"]["get-token.sh"])
deployment = next(i for i in items if i["kind"] == "Deployment")
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flags-agent"}, "spec": deployment["spec"]["template"]["spec"]}
work.joinpath("pod.json").write_text(json.dumps(pod))
PY
cmp -s "$WORK/configmap-get-token.sh" examples/workload/get-token.sh ||
  die "the ConfigMap in examples/30-workload.yaml differs from examples/workload/get-token.sh:
$(diff "$WORK/configmap-get-token.sh" examples/workload/get-token.sh)"
ok "the ConfigMap's get-token.sh is examples/workload/get-token.sh byte for byte"
PSS_NAMESPACE=$(kubectl create -o jsonpath='{.metadata.name}' -f - <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  generateName: m2m-examples-pss-
  labels:
    pod-security.kubernetes.io/enforce: restricted
YAML
)
for _ in $(seq 1 40); do kubectl get -n "$PSS_NAMESPACE" serviceaccount default >/dev/null 2>&1 && break; sleep 0.25; done
out=$(kubectl create --dry-run=server -n "$PSS_NAMESPACE" -f "$WORK/pod.json" 2>&1) ||
  die "the workload's pod does not pass Pod Security \"restricted\": $out"
ok "its pod passes Pod Security \"restricted\" (server-side dry-run in namespace $PSS_NAMESPACE)"

echo "==> examples: all $checks checks passed"
