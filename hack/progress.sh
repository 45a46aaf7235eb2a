# Sourced by hack/ scripts that build for a long time. Needs `log` and `die` from the caller.

# with_progress WHAT ESTIMATE COMMAND...: runs COMMAND, saying what it builds and how long a cold
# build takes, then the elapsed time every 60 s, so a long build is never silent.
with_progress() {
  local what=$1 estimate=$2; shift 2
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
