#!/usr/bin/env python3
"""A client of tokenhost's private_key_jwt and DPoP, built on libraries we did not write.

authlib (its requests OAuth2Session with `PrivateKeyJWT`) makes and sends the client
assertion, as a service would; joserfc (authlib's JOSE library) signs DPoP proofs and
computes RFC 7638 thumbprints, independently of the server's own code. The end-to-end
tests (tests/it/client_auth.rs) run it and check what it prints.

  client_auth.py keygen ALG DIR
      A key pair for ALG (RS256, PS256, ES256, EdDSA): DIR/private.pem, DIR/public.pem and,
      for ES256, DIR/cert.pem (a self-signed certificate of the same key).
  client_auth.py thumbprint PUBLIC_PEM ALG
      Prints the RFC 7638 SHA-256 thumbprint of the key (joserfc's).
  client_auth.py token URL ENDPOINT CLIENT_ID PRIVATE_PEM ALG AUDIENCE [--dpop DPOP_PEM]
      Gets a client-credentials token with authlib's PrivateKeyJWT (assertion audience:
      ENDPOINT, the token endpoint URL the server names in its metadata; the request goes
      to URL). With --dpop, the request carries a DPoP proof signed with that ES256 key.
      Prints {"status", "body", "jkt"} (jkt: the proof key's thumbprint, by joserfc).
  client_auth.py assertion CLIENT_ID PRIVATE_PEM ALG AUDIENCE [--exp-in S] [--iat-in S]
                 [--jti J] [--sub S] [--no-exp] [--hmac-with PEM] [--unsigned] [--kid K]
      Prints one client assertion, possibly malformed on purpose.
  client_auth.py dpop PRIVATE_PEM HTM HTU [--iat-in S] [--jti J] [--typ T] [--private-jwk]
      Prints {"proof", "jkt"}: one DPoP proof, possibly malformed on purpose.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hmac
import json
import sys
import time
import uuid
from pathlib import Path

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from joserfc import jws, jwk


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keygen(alg: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if alg in ("RS256", "RS384", "PS256"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        sys.exit(f"unknown alg {alg}")
    (out / "private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (out / "public.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    if alg == "ES256":
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokenhost test client")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        (out / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


KEY_TYPES = {"RS256": "RSA", "RS384": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}


def load_key(path: str, alg: str = "ES256"):
    return jwk.import_key(Path(path).read_bytes(), KEY_TYPES[alg])


def dpop_proof(key, htm: str, htu: str, iat_in: int = 0, jti: str | None = None,
               typ: str = "dpop+jwt", private_jwk: bool = False) -> tuple[str, str]:
    public = key.as_dict(private=private_jwk)
    header = {"typ": typ, "alg": "ES256", "jwk": public}
    claims = {
        "jti": jti or str(uuid.uuid4()),
        "htm": htm,
        "htu": htu,
        "iat": int(time.time()) + iat_in,
    }
    proof = jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])
    return proof, jwk.thumbprint(key.as_dict(private=False))


def token(args) -> None:
    # authlib reads a PEM string as an RSA key; other key types go in as joserfc keys.
    session = OAuth2Session(
        args.client_id,
        load_key(args.private_pem, args.alg),
        token_endpoint_auth_method=PrivateKeyJWT(args.endpoint, alg=args.alg),
    )
    headers = {}
    jkt = None
    if args.dpop:
        proof, jkt = dpop_proof(load_key(args.dpop), "POST", args.endpoint)
        headers["DPoP"] = proof
    # fetch_token raises on an error response; the tests want to see those too, so the
    # response is kept as it arrives.
    seen = []
    try:
        session.fetch_token(
            args.url,
            grant_type="client_credentials",
            audience=args.audience,
            headers=headers,
            hooks={"response": lambda response, **_: seen.append(response)},
        )
    except Exception as error:  # noqa: BLE001 (authlib's OAuthError, or a parse error)
        if not seen:
            raise
        print(f"authlib: {error!r}", file=sys.stderr)
    response = seen[-1]
    print(json.dumps({"status": response.status_code, "body": response.json(), "jkt": jkt}))


def assertion(args) -> None:
    now = int(time.time())
    claims = {
        "iss": args.client_id,
        "sub": args.sub or args.client_id,
        "aud": args.audience,
        "iat": now + args.iat_in,
        "jti": args.jti or str(uuid.uuid4()),
    }
    if not args.no_exp:
        claims["exp"] = now + args.exp_in
    payload = json.dumps(claims).encode()
    if args.unsigned:
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        print(f"{header}.{b64url(payload)}.")
        return
    if args.hmac_with:
        # The classic confusion: HS256 keyed with the client's public key, which anyone has
        # (by hand: JOSE libraries, joserfc among them, refuse to make one).
        signing_input = f"{b64url(json.dumps({'alg': 'HS256'}).encode())}.{b64url(payload)}"
        mac = hmac.new(Path(args.hmac_with).read_bytes(), signing_input.encode(), "sha256")
        print(f"{signing_input}.{b64url(mac.digest())}")
        return
    key = load_key(args.private_pem, args.alg)
    header = {"alg": args.alg, "typ": "JWT"}
    if args.kid:
        header["kid"] = args.kid
    print(jws.serialize_compact(header, payload, key, algorithms=[args.alg]))


def dpop(args) -> None:
    proof, jkt = dpop_proof(load_key(args.private_pem), args.htm, args.htu, args.iat_in,
                            args.jti, args.typ, args.private_jwk)
    print(json.dumps({"proof": proof, "jkt": jkt}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("alg")
    k.add_argument("dir", type=Path)
    th = sub.add_parser("thumbprint")
    th.add_argument("public_pem")
    th.add_argument("alg")
    t = sub.add_parser("token")
    for name in ("url", "endpoint", "client_id", "private_pem", "alg", "audience"):
        t.add_argument(name)
    t.add_argument("--dpop")
    a = sub.add_parser("assertion")
    for name in ("client_id", "private_pem", "alg", "audience"):
        a.add_argument(name)
    a.add_argument("--exp-in", type=int, default=60)
    a.add_argument("--iat-in", type=int, default=0)
    a.add_argument("--jti")
    a.add_argument("--sub")
    a.add_argument("--kid")
    a.add_argument("--no-exp", action="store_true")
    a.add_argument("--hmac-with")
    a.add_argument("--unsigned", action="store_true")
    d = sub.add_parser("dpop")
    for name in ("private_pem", "htm", "htu"):
        d.add_argument(name)
    d.add_argument("--iat-in", type=int, default=0)
    d.add_argument("--jti")
    d.add_argument("--typ", default="dpop+jwt")
    d.add_argument("--private-jwk", action="store_true")
    args = p.parse_args()
    {"keygen": lambda: keygen(args.alg, args.dir), "token": lambda: token(args),
     "thumbprint": lambda: print(jwk.thumbprint(load_key(args.public_pem, args.alg).as_dict())),
     "assertion": lambda: assertion(args), "dpop": lambda: dpop(args)}[args.command]()


if __name__ == "__main__":
    main()
