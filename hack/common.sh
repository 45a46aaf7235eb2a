# shellcheck shell=bash
# The library every hack/ script sources, right after `set -euo pipefail`:
#
#   # shellcheck source=hack/common.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#
# It only defines; it changes no directory and starts nothing. What it gives the script:
#
#   ROOT                  the repository
#   M2M_CACHE_DIR         built binaries and tools, outside the clone so a fresh clone on the same
#                         machine starts warm (exported; default ~/.cache/m2m-operator)
#   STATE                 the local control plane's state: pid files, logs, kubeconfig
#                         ($M2M_CLUSTER_DIR, default <repo>/.cluster)
#   log MSG...            "[<script>] MSG" on stderr, <script> being the script's name (cluster,
#                         chart, demo, ...)
#   die MSG...            "[<script>] error: MSG" on stderr, then exit 1
#   need CMD WHY          die unless CMD is installed
#   need_cargo            die unless cargo is installed; exports CARGO_TARGET_DIR (default
#                         $M2M_CACHE_DIR/cargo-target)
#   step TITLE            a section heading on stdout: a blank line, then "==> TITLE"
#   with_progress WHAT ESTIMATE CMD...   runs a long build, saying how long it takes
#   b64url_decode, b64url_encode         base64url (unpadded) on stdin to stdout
#   secret_value NAMESPACE SECRET KEY    one key of a Secret, decoded (kubectl)
#   spawn PIDFILE LOG CMD...             starts CMD detached (its own session, no stdin)
#   pid_alive PIDFILE EXPECT             the process of PIDFILE runs and its command line has EXPECT
#   stop_process NAME PIDFILE EXPECT     stops that process by its PID (TERM, then KILL)
#   wait_for TIMEOUT CMD...              retries CMD every 0.5 s for up to TIMEOUT seconds

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
M2M_CACHE_DIR=${M2M_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/m2m-operator}
export M2M_CACHE_DIR
# shellcheck disable=SC2034 # for the scripts that source this
STATE=${M2M_CLUSTER_DIR:-$ROOT/.cluster}
M2M_SCRIPT=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$M2M_SCRIPT" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$M2M_SCRIPT" "$*" >&2
  exit 1
}

need() { # command why
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed ($2)"
}

need_cargo() {
  need cargo "Rust; install it with rustup"
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$M2M_CACHE_DIR/cargo-target}
}

step() { printf '\n==> %s\n' "$*"; }

# with_progress WHAT ESTIMATE COMMAND...: runs COMMAND, saying what it builds and how long a cold
# build takes, then the elapsed time every 60 s, so a long build is never silent.
with_progress() {
  local what=$1 estimate=$2
  shift 2
  local start=$SECONDS
  log "building $what (cold: about $estimate on 2 cores; cached afterwards)"
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null && log "  ... still building $what, $((SECONDS - start))s so far"
  done
  wait "$pid" || die "building $what failed (see output above)"
  log "built $what in $((SECONDS - start))s"
}

b64url_decode() {
  local s
  s=$(tr '_-' '/+')
  while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
  printf '%s' "$s" | base64 -d
}
b64url_encode() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

secret_value() { # namespace secret key
  kubectl get secret -n "$1" "$2" -o jsonpath="{.data.$3}" | base64 -d
}

# spawn PIDFILE LOG COMMAND...: COMMAND in the background, in its own session (so it outlives
# this script and no terminal signal reaches it), stdin closed, output into LOG.
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# pid_alive PIDFILE EXPECT: the PID in PIDFILE runs, and its command line contains EXPECT (a PID
# reused by another program does not count).
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$2"
}

# Whether a process runs (a zombie does not: without an init that reaps orphans, as in some
# containers, an exited process can stay a zombie and `kill -0` would still succeed).
running() { # pid
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# stop_process NAME PIDFILE EXPECT: if PIDFILE names a live process running EXPECT, SIGTERM, up
# to 20 s to exit, then SIGKILL; dies if it still runs. Removes PIDFILE either way. Only that PID
# is signalled, never a process found by name.
stop_process() {
  local name=$1 pidfile=$2 expect=$3 pid
  if pid_alive "$pidfile" "$expect"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do
      running "$pid" || break
      sleep 0.25
    done
    if running "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    running "$pid" && die "$name (pid $pid) is still running after SIGKILL"
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

# wait_for TIMEOUT COMMAND...: until COMMAND succeeds, every 0.5 s; fails after TIMEOUT seconds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
