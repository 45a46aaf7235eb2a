#!/usr/bin/env bash
# A real local Kubernetes control plane for tests and the demo: etcd, kube-apiserver and
# kube-controller-manager built from their official Go modules (pinned in hack/versions.env),
# cached outside the clone, run on loopback ports as processes this script started.
#
#   hack/cluster.sh build    build (or reuse) the binaries: etcd, kube-apiserver,
#                            kube-controller-manager, kubectl, helm
#   hack/cluster.sh up       build if needed, start the plane, wait until ready (idempotent)
#   hack/cluster.sh down     stop exactly the processes `up` started (by PID)
#   hack/cluster.sh status   say what runs
#   hack/cluster.sh restart-apiserver   restart kube-apiserver alone (etcd keeps the data)
#   hack/cluster.sh env      print `export` lines: KUBECONFIG and PATH with the built tools
#
# Environment: M2M_CACHE_DIR (binaries, default ~/.cache/m2m-operator), M2M_CLUSTER_DIR (state,
# default <repo>/.cluster), M2M_ETCD_PORT (23790), M2M_APISERVER_PORT (26443).
set -euo pipefail
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=hack/versions.env
source "$ROOT/hack/versions.env"

CACHE=$M2M_CACHE_DIR
ETCD_PORT=${M2M_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 10))
API_PORT=${M2M_APISERVER_PORT:-26443}

K8S_BIN=$CACHE/kubernetes/$K8S_VERSION
ETCD_BIN=$CACHE/etcd/$ETCD_VERSION
HELM_BIN=$CACHE/helm/$HELM_VERSION
KUBECONFIG_PATH=$STATE/kubeconfig

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# ---------------------------------------------------------------- building

check_build_prereqs() {
  need go "install Go >= 1.26 to build the control plane"
  local avail_kb
  mkdir -p "$CACHE"
  avail_kb=$(df -Pk "$CACHE" | awk 'NR==2 {print $4}')
  if [ "${avail_kb:-0}" -lt $((6 * 1024 * 1024)) ]; then
    die "less than 6 GiB free under $CACHE (have $((avail_kb / 1024)) MiB); the cold build needs about 6 GiB"
  fi
}

build_kubernetes() {
  [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kube-controller-manager" ] && [ -x "$K8S_BIN/kubectl" ] && return 0
  local src=$CACHE/src/kubernetes-$K8S_VERSION minor
  minor=${K8S_VERSION#v1.}
  rm -rf "$src" && mkdir -p "$src"
  (
    cd "$src"
    go mod init m2m-operator.local/controlplane >/dev/null 2>&1
    # k8s.io/kubernetes requires its staging modules at v0.0.0 with local replace lines;
    # replace each with its published v0.X.Y instead.
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -n "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
    {
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo "replace ("
      sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"$minor"'#p' "$gomod"
      echo ")"
    } >>go.mod
    cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy -e >/dev/null 2>&1 || true
    go mod download
  ) || die "could not resolve the Kubernetes $K8S_VERSION modules"
  local ldflags
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local out=$src/out
  mkdir -p "$out"
  build_k8s() {
    cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl
  }
  with_progress "kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION" "7-9 minutes (measured 396-521 s)" build_k8s
  mkdir -p "$(dirname "$K8S_BIN")"
  rm -rf "$K8S_BIN.tmp" && mv "$out" "$K8S_BIN.tmp" && rm -rf "$K8S_BIN" && mv "$K8S_BIN.tmp" "$K8S_BIN"
  rm -rf "$src"
}

build_etcd() {
  [ -x "$ETCD_BIN/etcd" ] && return 0
  local src=$CACHE/src/etcd-$ETCD_VERSION
  rm -rf "$src" && mkdir -p "$src"
  build_it() {
    cd "$src" &&
      go mod init m2m-operator.local/etcd >/dev/null 2>&1 &&
      go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 &&
      go build -trimpath -ldflags "-s -w" -o "$src/out/etcd" go.etcd.io/etcd/server/v3
  }
  with_progress "etcd $ETCD_VERSION" "1-2 minutes" build_it
  mkdir -p "$ETCD_BIN" && mv "$src/out/etcd" "$ETCD_BIN/etcd" && rm -rf "$src"
}

build_helm() {
  [ -x "$HELM_BIN/helm" ] && return 0
  local tmp=$CACHE/src/helm-$HELM_VERSION
  rm -rf "$tmp" && mkdir -p "$tmp"
  build_it() { GOBIN=$tmp go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; }
  with_progress "helm $HELM_VERSION" "2-3 minutes" build_it
  mkdir -p "$HELM_BIN" && mv "$tmp/helm" "$HELM_BIN/helm" && rm -rf "$tmp"
}

cmd_build() {
  if [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kube-controller-manager" ] && [ -x "$K8S_BIN/kubectl" ] &&
    [ -x "$ETCD_BIN/etcd" ] && [ -x "$HELM_BIN/helm" ]; then
    return 0
  fi
  check_build_prereqs
  mkdir -p "$CACHE"
  # One build at a time per cache, whoever runs it.
  exec 9>"$CACHE/build.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE/build.lock; waiting for it"
    flock 9
  fi
  build_etcd
  build_helm
  build_kubernetes
  flock -u 9
}

# ---------------------------------------------------------------- running

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

advertise_address() {
  local addr
  addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
  [ -n "$addr" ] || addr=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.' | grep -v '^127\.' | head -n1 || true)
  [ -n "$addr" ] || die "no non-loopback IPv4 address on this machine; kube-apiserver needs one as --advertise-address"
  echo "$addr"
}

make_pki() {
  local pki=$STATE/pki adv=$1
  [ -f "$pki/admin.crt" ] && return 0
  need openssl "used to create the test CA and certificates"
  mkdir -p "$pki" && chmod 700 "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=m2m-operator-test-ca" 2>/dev/null
    cat >serving.ext <<EXT
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1,IP:$adv
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile serving.ext 2>/dev/null
    echo "extendedKeyUsage=clientAuth" >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=m2m-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext
  ) || die "creating certificates failed"
}

write_kubeconfig() {
  local pki=$STATE/pki b64
  b64() { base64 -w0 <"$1"; }
  umask 077
  cat >"$KUBECONFIG_PATH" <<KC
apiVersion: v1
kind: Config
clusters:
- name: m2m-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: m2m-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: m2m-local
  context:
    cluster: m2m-local
    user: m2m-admin
current-context: m2m-local
KC
}

api_ready() {
  curl -sf --max-time 3 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

start() { # name binary args...
  local name=$1
  shift
  mkdir -p "$STATE/logs"
  spawn "$STATE/$name.pid" "$STATE/logs/$name.log" "$@"
}

# start_apiserver ADVERTISE_ADDRESS: starts kube-apiserver on the existing PKI and etcd, waits until ready.
start_apiserver() {
  local adv=$1
  log "starting kube-apiserver $K8S_VERSION on 127.0.0.1:$API_PORT"
  # Admission: the default plugins minus ServiceAccount (no token controller, no pods). The
  # defaults include ValidatingAdmissionPolicy (GA since 1.30), which the chart's policy on the
  # operator's Secret writes needs; the cluster tests fail when it is not enforced.
  local pki=$STATE/pki
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address="$adv" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --authorization-mode=RBAC \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true \
    --cert-dir="$STATE/apiserver-certs"
  if ! wait_for 120 api_ready; then
    tail -n 20 "$STATE/logs/kube-apiserver.log" >&2 || true
    die "kube-apiserver did not become ready; see $STATE/logs/kube-apiserver.log"
  fi
}

# Restarts kube-apiserver alone (etcd and its data stay): clients see their connections and
# watches drop and must reconnect. Used by the chaos test.
cmd_restart_apiserver() {
  pid_alive "$STATE/etcd.pid" "$ETCD_BIN/etcd" || die "etcd is not running; run 'up' first"
  stop_pid kube-apiserver "$K8S_BIN/kube-apiserver"
  start_apiserver "$(advertise_address)"
  log "kube-apiserver restarted"
}

cmd_up() {
  need curl "used to probe the API server"
  need setsid "util-linux, used to detach the control plane processes"
  cmd_build
  mkdir -p "$STATE"
  if pid_alive "$STATE/etcd.pid" "$ETCD_BIN/etcd" && pid_alive "$STATE/kube-apiserver.pid" "$K8S_BIN/kube-apiserver" &&
    pid_alive "$STATE/kube-controller-manager.pid" "$K8S_BIN/kube-controller-manager" && api_ready; then
    log "already running; KUBECONFIG=$KUBECONFIG_PATH"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  # Partly running (or stale pidfiles): start clean.
  cmd_down >/dev/null 2>&1 || true
  for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT"; do
    port_busy "$p" && die "port $p on 127.0.0.1 is already in use by another process; free it or set M2M_ETCD_PORT / M2M_APISERVER_PORT"
  done
  local adv
  adv=$(advertise_address)
  make_pki "$adv"
  rm -rf "$STATE/etcd-data"
  log "starting etcd $ETCD_VERSION on 127.0.0.1:$ETCD_PORT"
  start etcd "$ETCD_BIN/etcd" \
    --name=m2m-local --data-dir="$STATE/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="m2m-local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level=warn
  wait_for 30 curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" ||
    die "etcd did not become healthy; see $STATE/logs/etcd.log"

  start_apiserver "$adv"
  write_kubeconfig

  log "starting kube-controller-manager (garbage collector, namespace, service accounts)"
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller \
    --leader-elect=false --secure-port=0 --use-service-account-credentials=false
  sleep 1
  pid_alive "$STATE/kube-controller-manager.pid" "$K8S_BIN/kube-controller-manager" ||
    die "kube-controller-manager exited; see $STATE/logs/kube-controller-manager.log"
  log "ready; KUBECONFIG=$KUBECONFIG_PATH"
  echo "$KUBECONFIG_PATH"
}

stop_pid() { # name binary
  stop_process "$1" "$STATE/$1.pid" "$2"
}

cmd_down() {
  stop_pid kube-controller-manager "$K8S_BIN/kube-controller-manager"
  stop_pid kube-apiserver "$K8S_BIN/kube-apiserver"
  stop_pid etcd "$ETCD_BIN/etcd"
}

cmd_status() {
  local rc=0
  for entry in "etcd:$ETCD_BIN/etcd" "kube-apiserver:$K8S_BIN/kube-apiserver" \
    "kube-controller-manager:$K8S_BIN/kube-controller-manager"; do
    local name=${entry%%:*} bin=${entry#*:}
    if pid_alive "$STATE/$name.pid" "$bin"; then
      echo "$name: running (pid $(cat "$STATE/$name.pid"))"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  if [ $rc -eq 0 ] && api_ready; then echo "api: ready at https://127.0.0.1:$API_PORT"; else echo "api: not ready"; rc=1; fi
  echo "kubeconfig: $KUBECONFIG_PATH"
  return $rc
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
  echo "export PATH=$K8S_BIN:$HELM_BIN:$ETCD_BIN:\$PATH"
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  restart-apiserver) cmd_restart_apiserver ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 build|up|down|restart-apiserver|status|env" >&2; exit 2 ;;
esac
