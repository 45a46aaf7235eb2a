#!/bin/sh
# Gets access tokens with no secret at all: the pod's projected ServiceAccount token (audience =
# the operator's issuer) is the client assertion (RFC 7523), and the M2MApp that lists this
# ServiceAccount in spec.clientAuthentication.serviceAccountNames is the client. The Secret the
# operator still writes (client_id, token_url, ..., no client_secret) tells it where to go; the
# client_id is sent so the endpoint need not search for the app. The kubelet refreshes the token
# file before it expires, so it is read again for every request. The token reaches curl on
# stdin, never on its command line.
#
#   get-token-keyless.sh          loop: get a token, log its scope and lifetime (never the token),
#                                 sleep half its lifetime; on an error log it and retry in 10 s
#   get-token-keyless.sh --once   get one token, print the access token alone and exit (or M2M_ONCE=1)
#   M2M_SECRET_DIR                where the app's Secret is mounted (default /var/run/secrets/m2m)
#   M2M_SA_TOKEN                  the projected token file (default /var/run/secrets/m2m-sa/token)
set -eu
dir=${M2M_SECRET_DIR:-/var/run/secrets/m2m}
sa_token=${M2M_SA_TOKEN:-/var/run/secrets/m2m-sa/token}
case "${1:-}" in
  --once) M2M_ONCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac

token_response() { # the token endpoint's JSON answer; fails on an HTTP error
  { printf 'grant_type=client_credentials&client_id=%s' "$(cat "$dir/client_id")"
    printf '&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer'
    printf '&client_assertion=%s' "$(cat "$sa_token")"; } |
    curl -sS --fail-with-body --data-binary @- "$(cat "$dir/token_url")"
}

field() { # NAME: a string or number field of the (compact) JSON on stdin
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

if [ "${M2M_ONCE:-}" = 1 ]; then
  response=$(token_response) || { echo "token request failed: $response" >&2; exit 1; }
  printf '%s\n' "$response" | field access_token
  exit 0
fi
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
