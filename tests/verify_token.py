"""Verify a tokenhost access token with PyJWT, as a Python API would.

usage: verify_token.py JWKS_URL TOKEN AUDIENCE ISSUER
Prints the verified claims as JSON; exits non-zero if the token does not verify.
Needs PyJWT with its crypto extra (`pip install 'pyjwt[crypto]'`; `make test` installs it).
"""

import json
import sys

import jwt

jwks_url, token, audience, issuer = sys.argv[1:5]
client = jwt.PyJWKClient(jwks_url)
key = client.get_signing_key_from_jwt(token)
header = jwt.get_unverified_header(token)
if header.get("typ") != "at+jwt":
    sys.exit(f"unexpected typ {header.get('typ')!r}")
claims = jwt.decode(
    token,
    key=key.key,
    algorithms=["RS256", "ES256", "EdDSA"],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
)
print(json.dumps(claims))
