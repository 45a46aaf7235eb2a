"""Verify an m2m-operator access token the way an API does: offline, against the issuer's JWKS.

    API_AUDIENCE=https://api.example.com python3 verify.py ISSUER TOKEN   (or the token on stdin)

Trust the issuer you configure, never the one a token names. Then trust `org_code` and `scope`
from the verified claims: the operator sets them from the app's Organization, never from the
request. A token without `org_code` comes from a global (platform) app.
"""
import json
import os
import sys
import urllib.request

import jwt  # PyJWT

AUDIENCE = os.environ.get("API_AUDIENCE", "https://api.example.com")  # this API, as in spec.audiences

issuer = sys.argv[1].rstrip("/")
token = sys.argv[2] if len(sys.argv) > 2 else sys.stdin.read().strip()

with urllib.request.urlopen(f"{issuer}/.well-known/oauth-authorization-server") as response:
    metadata = json.load(response)
if jwt.get_unverified_header(token).get("typ") != "at+jwt":  # RFC 9068 access tokens only
    sys.exit("not an access token")
key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
claims = jwt.decode(
    token,
    key,
    algorithms=["ES256", "RS256", "EdDSA"],
    issuer=issuer,
    audience=AUDIENCE,
    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
)
org_code = claims.get("org_code")
print(f"org_code: {org_code}" if org_code else "global app (no org_code)")
print(f"scope: {claims.get('scope', '')}")
print(f"client: {claims['client_id']}")
