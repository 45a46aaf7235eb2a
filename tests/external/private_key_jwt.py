"""A client of the token endpoint written with authlib, as a user would: private_key_jwt.

Usage: private_key_jwt.py TOKEN_URL CLIENT_ID KEY_PEM KID ALG AUDIENCE
Prints the token response as JSON, with "second_request": 200 when a second request got a token too.
authlib's assertions live an hour by default; the operator accepts at most five minutes, so
the assertion lifetime is set (expires_in), as every client of such a server must.
"""

import json
import sys

from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """authlib's private_key_jwt with a 2-minute assertion and the audience given."""

    def __init__(self, audience, **kwargs):
        super().__init__(**kwargs)
        self.audience = audience

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=self.audience,
            header=self.headers,
            alg=self.alg,
            expires_in=120,
        )


def main():
    token_url, client_id, key_file, kid, alg, audience = sys.argv[1:7]
    with open(key_file, "rb") as f:
        key = JsonWebKey.import_key(f.read(), {"kid": kid})
    auth = ShortLivedPrivateKeyJWT(audience, alg=alg, headers={"kid": kid})
    session = OAuth2Session(client_id, key, token_endpoint_auth_method=auth)
    session.register_client_auth_method(auth)
    token = dict(session.fetch_token(token_url, grant_type="client_credentials"))
    # A second request signs a new assertion (a new jti): not a replay.
    again = session.fetch_token(token_url, grant_type="client_credentials")
    token["second_request"] = 200 if again.get("access_token") else 0
    print(json.dumps(token))


if __name__ == "__main__":
    main()
