#!/bin/sh
# Gets an access token with nothing but what the app's Secret provides, mounted as files:
# client_id, client_secret and token_url (client_secret_basic, RFC 6749 §2.3.1; the generated id
# and secret use only URL-safe characters, so their form-encoding is themselves).
# The files are read again for every token, so a rotated secret is picked up when the kubelet
# updates the mount. The secret is passed to curl on stdin, never on its command line.
#
#   M2M_SECRET_DIR  where the Secret is mounted (default /var/run/secrets/m2m)
#   M2M_ONCE=1      get one token, print it (the access token only) and exit
set -eu
dir=${M2M_SECRET_DIR:-/var/run/secrets/m2m}

token_response() {
  printf 'user = "%s:%s"\n' "$(cat "$dir/client_id")" "$(cat "$dir/client_secret")" |
    curl -sS --fail-with-body --config - -d grant_type=client_credentials "$(cat "$dir/token_url")"
}

field() { # name: a string or number field of the JSON on stdin
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

if [ "${M2M_ONCE:-}" = 1 ]; then
  token_response | field access_token
  exit 0
fi
while :; do
  if response=$(token_response); then
    # Use the token here (Authorization: Bearer ...); never log it.
    echo "$(date -u +%FT%TZ) got a token: scope=\"$(echo "$response" | field scope)\" expires_in=$(echo "$response" | field expires_in)s"
    sleep "$(($(echo "$response" | field expires_in) / 2))"
  else
    echo "$(date -u +%FT%TZ) token request failed: $response" >&2
    sleep 10
  fi
done
