"""JOSE for the fake: its own signing keys, id_token signing, verifying what clients sign."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from .errors import OAuthError
from .settings import FakeClient

#: what clients may sign with (seed 001: "RS*, ES* or PS*"); HS* only with the client secret
ASYMMETRIC_ALGS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
)
HMAC_ALGS: tuple[str, ...] = ("HS256", "HS384", "HS512")
#: what the fake signs id_tokens with (its JWKS holds one RSA and one P-256 key)
ID_TOKEN_ALGS: tuple[str, ...] = ("RS256", "PS256", "ES256")


def generate_signing_jwks() -> dict[str, Any]:
    """A private JWKS with one RSA key (RS256/PS256) and one EC P-256 key (ES256)."""
    rsa = RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)
    ec = ECKey.generate_key("P-256", parameters={"use": "sig"}, auto_kid=True)
    return KeySet([rsa, ec]).as_dict(private=True)


class Signer:
    """Signs the fake's id_tokens; ``tamper`` signs with a stranger key under the same ``kid``."""

    def __init__(self, private_jwks: dict[str, Any]) -> None:
        self.keys = KeySet.import_key_set(private_jwks)  # type: ignore[arg-type]
        self._strangers: dict[str, RSAKey | ECKey] = {}

    def public_jwks(self) -> dict[str, Any]:
        return self.keys.as_dict(private=False)

    def _key_for(self, alg: str) -> RSAKey | ECKey:
        wanted = "EC" if alg.startswith("ES") else "RSA"
        for key in self.keys:
            if key.key_type == wanted:
                return key  # type: ignore[return-value]
        raise RuntimeError(f"the fake has no {wanted} key for {alg}")

    def _stranger_for(self, key: RSAKey | ECKey) -> RSAKey | ECKey:
        if key.kid not in self._strangers:
            params = {"kid": key.kid, "use": "sig"}
            self._strangers[key.kid] = (
                ECKey.generate_key("P-256", parameters=params)
                if isinstance(key, ECKey)
                else RSAKey.generate_key(2048, parameters=params)
            )
        return self._strangers[key.kid]

    def sign(self, claims: dict[str, Any], alg: str, *, tamper: bool = False) -> str:
        key = self._key_for(alg)
        if tamper:
            key = self._stranger_for(key)
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


def half_hash(value: str, alg: str) -> str:
    """OIDC Core §3.3.2.11 (c_hash) / §3.2.2.10 (at_hash): base64url of the left half of the
    hash of the ASCII value, using the hash of the id_token's ``alg``."""
    bits = alg[2:] if alg[2:] in ("256", "384", "512") else "256"
    digest = hashlib.new(f"sha{bits}", value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def peek_header(token: str, error: type[OAuthError]) -> dict[str, Any]:
    """The JWS protected header, before verification, for picking the key and algorithm."""
    if not isinstance(token, str) or token.count(".") != 2:
        # five segments would be a JWE: encrypted request objects are not supported here
        raise error("not a compact JWS")
    try:
        header = json.loads(b64url_decode(token.split(".", 1)[0]))
    except ValueError:
        raise error("malformed JWS header") from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise error("malformed JWS header")
    return header


def verify_client_jws(
    token: str,
    client: FakeClient,
    *,
    allowed_algs: tuple[str, ...],
    required_alg: str | None,
    error: type[OAuthError],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a JWS a client signed (request object or client assertion): header and claims.

    The key is the client secret for HS*, else the client's registered JWKS (by ``kid``).
    ``alg: none`` is never accepted (RFC 9101 §10.2 wants signed request objects here).
    """
    header = peek_header(token, error)
    alg = header["alg"]
    if alg not in allowed_algs:
        raise error(f"alg {alg!r} is not allowed")
    if required_alg and alg != required_alg:
        raise error(f"alg {alg!r} is not the registered {required_alg!r}")
    key: OctKey | KeySet
    if alg in HMAC_ALGS:
        if not client.client_secret:
            raise error("the client has no secret to verify an HMAC signature")
        key = OctKey.import_key(client.client_secret)
    else:
        if not client.jwks:
            raise error("the client has no registered JWKS")
        key = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[alg])
    except JoseError as exc:
        raise error(f"signature does not verify ({exc.error})") from None
    except ValueError:
        raise error("signature does not verify (no usable key)") from None
    try:
        claims = json.loads(obj.payload)
    except ValueError:
        raise error("payload is not JSON") from None
    if not isinstance(claims, dict):
        raise error("payload is not a JSON object")
    return header, claims


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
