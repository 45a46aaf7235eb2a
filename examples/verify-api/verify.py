"""Verify an m2m-operator access token the way an API does: offline, against the issuer's JWKS.

    API_ISSUER=http://127.0.0.1:18080 API_AUDIENCE=https://api.example.com python3 verify.py TOKEN

The token may also come on stdin, with or without "Bearer ". Trust the issuer you configure, never
the one a token names; then trust `org_code` and `scope` from the verified claims: the operator
sets them from the app's Organization, never from the request. No `org_code`: a global app.
"""
import json
import os
import sys
import urllib.request

import jwt  # PyJWT

ISSUER = os.environ.get("API_ISSUER", "http://127.0.0.1:18080").rstrip("/")  # hack/demo.sh's
AUDIENCE = os.environ.get("API_AUDIENCE", "https://api.example.com")  # this API, in spec.audiences

token = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
token = token.strip().removeprefix("Bearer ").strip()

with urllib.request.urlopen(f"{ISSUER}/.well-known/oauth-authorization-server") as response:
    metadata = json.load(response)
if metadata["issuer"] != ISSUER:  # RFC 8414 §3.3
    sys.exit(f"the discovery document names issuer {metadata['issuer']}, not {ISSUER}")
jwks = jwt.PyJWKClient(metadata["jwks_uri"])  # an API keeps one: it caches the keys

try:
    if jwt.get_unverified_header(token).get("typ") not in ("at+jwt", "application/at+jwt"):
        raise jwt.InvalidTokenError("not an RFC 9068 access token (typ at+jwt)")
    claims = jwt.decode(
        token,
        jwks.get_signing_key_from_jwt(token),
        algorithms=["ES256", "RS256", "EdDSA"],  # never let the token choose (no HS*, no none)
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},  # exp and nbf are checked
    )
except jwt.PyJWTError as error:
    sys.exit(f"invalid token: {error}")

org_code = claims.get("org_code")
print(f"org_code: {org_code}" if org_code else "global app (no org_code)")
print(f"scope: {claims.get('scope', '')}")
print(f"client_id: {claims['client_id']}")
