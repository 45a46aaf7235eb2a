#!/bin/sh
# Gets access tokens with nothing but what the app's Secret provides, mounted as files: client_id,
# client_secret and token_url. Client authentication is client_secret_basic: RFC 6749 §2.3.1 wants
# id and secret form-encoded first, and the generated ones use only [A-Za-z0-9_-], which
# form-encoding leaves unchanged, so they go in as they are. No scope or audience is requested, so
# the token gets all of the app's (the Secret's `scope` and `audience` keys list them).
# The files are read again for every token, so a rotated secret is picked up when the kubelet
# updates the mount. The secret reaches curl on stdin, never on its command line.
#
#   get-token.sh           loop: get a token, log its scope and lifetime (never the token itself),
#                          sleep half its lifetime; on an error log it and retry in 10 s
#   get-token.sh --once    get one token, print the access token alone and exit (or M2M_ONCE=1)
#   M2M_SECRET_DIR         where the Secret is mounted (default /var/run/secrets/m2m)
set -eu
dir=${M2M_SECRET_DIR:-/var/run/secrets/m2m}
case "${1:-}" in
  --once) M2M_ONCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac

token_response() { # the token endpoint's JSON answer; fails on an HTTP error
  printf 'user = "%s:%s"\n' "$(cat "$dir/client_id")" "$(cat "$dir/client_secret")" |
    curl -sS --fail-with-body --config - -d grant_type=client_credentials "$(cat "$dir/token_url")"
}

field() { # NAME: a string or number field of the (compact) JSON on stdin
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

if [ "${M2M_ONCE:-}" = 1 ]; then
  response=$(token_response) || { echo "token request failed: $response" >&2; exit 1; }
  printf '%s\n' "$response" | field access_token
  exit 0
fi
# As PID 1 the shell would ignore SIGTERM; and a running sleep would hold the trap back: hence
# `sleep & wait`, which a signal interrupts.
trap 'kill ${!:-} 2>/dev/null; exit 0' TERM INT
while :; do
  if response=$(token_response); then
    # Use the token here (Authorization: Bearer ...); never log it.
    expires_in=$(printf '%s\n' "$response" | field expires_in)
    echo "$(date -u +%FT%TZ) got a token: scope=\"$(printf '%s\n' "$response" | field scope)\" expires_in=${expires_in}s"
    sleep $((${expires_in:-60} / 2)) & wait $!
  else
    echo "$(date -u +%FT%TZ) token request failed: $response" >&2
    sleep 10 & wait $!
  fi
done
