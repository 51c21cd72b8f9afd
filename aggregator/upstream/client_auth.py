"""How a plugin authenticates as a client at its upstream, and signs what it sends there.

Client authentication at the token, PAR and revocation endpoints: ``client_secret_basic`` and
``client_secret_post`` (RFC 6749 §2.3.1), ``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect
Core §9). Signed JWTs (request objects, RFC 9101) use the private key when there is one, else
HS256 keyed with the client secret (OpenID Connect Core §10.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import OctKey

from aggregator.upstream.plugin_keys import SigningKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
#: a client assertion lives this long (seconds): one request, with some clock skew
ASSERTION_LIFETIME = 60


@dataclass(frozen=True)
class ClientCredentials:
    """Our client at the upstream: its id, how it authenticates, and with what."""

    client_id: str
    auth_method: str = "client_secret_basic"
    client_secret: str | None = None
    signing_key: SigningKey | None = None

    def authenticate(
        self, form: dict[str, str], token_endpoint: str, now: float
    ) -> tuple[dict[str, str], tuple[str, str] | None]:
        """``form`` with what the method adds to the body, and the HTTP Basic pair (or None)."""
        if self.auth_method == "private_key_jwt":
            return {**form, "client_id": self.client_id, "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self.assertion(token_endpoint, now)}, None
        if self.auth_method == "client_secret_post":
            return {**form, "client_id": self.client_id,
                    "client_secret": self.client_secret or ""}, None
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding (Authlib's
        # own method skips that step, which breaks secrets with reserved characters)
        return form, (quote(self.client_id, safe=""), quote(self.client_secret or "", safe=""))

    def assertion(self, token_endpoint: str, now: float) -> str:
        """RFC 7523 §3: iss = sub = client_id, ``aud`` the token endpoint (the value every server
        accepts, RFC 9126 §2 at PAR endpoints too), short ``exp``, fresh ``jti``; ``kid`` in the
        header so the upstream picks the right key."""
        key = self._key()
        return private_key_jwt_sign(
            key.key, client_id=self.client_id, token_endpoint=token_endpoint, alg=key.alg,
            header={"kid": key.kid} if key.kid else {}, issued_at=int(now),
            expires_in=ASSERTION_LIFETIME,
        )

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT of ``claims``: with the private key (``kid`` in the header) when configured,
        else HS256 keyed with the client secret (OpenID Connect Core §10.1)."""
        if self.signing_key is not None:
            key = self.signing_key
            header = {"alg": key.alg, **({"kid": key.kid} if key.kid else {})}
            return jwt.encode(header, claims, key.key, algorithms=[key.alg])
        secret = OctKey.import_key(self.client_secret or "")
        return jwt.encode({"alg": "HS256"}, claims, secret, algorithms=["HS256"])

    def _key(self) -> SigningKey:
        if self.signing_key is None:
            raise ValueError("private_key_jwt needs a signing key")  # configuration prevents it
        return self.signing_key
