"""Client authentication at the token and PAR endpoints: the client's registered method only."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from urllib.parse import unquote

from flask import Request

from .errors import InvalidClient, InvalidRequest
from .jose import ASYMMETRIC_ALGS, b64url_decode, verify_client_jws
from .settings import FakeClient
from .state import FakeMoneyhub

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def authenticate_client(fake: FakeMoneyhub, request: Request, audiences: set[str]) -> FakeClient:
    """The authenticated client, or ``invalid_client``.

    ``audiences`` are the values a ``private_key_jwt`` assertion may name in ``aud``: the issuer,
    the token endpoint and the endpoint being called.
    """
    header = request.headers.get("Authorization", "")
    basic = header[:6].lower() == "basic "
    assertion = request.form.get("client_assertion")
    if basic and assertion:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request
        raise InvalidRequest("more than one client authentication method was used")
    if basic:
        return _basic(fake, header[6:])
    if assertion:
        return _private_key_jwt(fake, request, assertion, audiences)
    if request.form.get("client_secret"):
        raise InvalidClient("client_secret_post is not supported")
    raise InvalidClient("client authentication is required")


def _basic(fake: FakeMoneyhub, credentials: str) -> FakeClient:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        raw_id, raw_secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("malformed Basic credentials", basic=True) from None
    client = fake.client(unquote(raw_id))
    if client is None or not client.client_secret:
        raise InvalidClient("unknown client", basic=True)
    if client.token_endpoint_auth_method != "client_secret_basic":
        raise InvalidClient(
            f"this client authenticates with {client.token_endpoint_auth_method}", basic=True
        )
    if not hmac.compare_digest(unquote(raw_secret).encode(), client.client_secret.encode()):
        raise InvalidClient("invalid client secret", basic=True)
    return client


def _private_key_jwt(
    fake: FakeMoneyhub, request: Request, assertion: str, audiences: set[str]
) -> FakeClient:
    """RFC 7523 §2.2 and §3, as OIDC Core §9 uses it for ``private_key_jwt``."""
    if request.form.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClient("client_assertion_type must be jwt-bearer")
    try:
        unverified = json.loads(b64url_decode(assertion.split(".")[1]))
        client_id = unverified["sub"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise InvalidClient("malformed client assertion") from None
    client = fake.client(client_id if isinstance(client_id, str) else None)
    if client is None:
        raise InvalidClient("unknown client")
    if client.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClient(f"this client authenticates with {client.token_endpoint_auth_method}")
    form_client_id = request.form.get("client_id")
    if form_client_id is not None and form_client_id != client.client_id:
        raise InvalidClient("client_id does not match the assertion")
    _, claims = verify_client_jws(
        assertion, client, allowed_algs=ASYMMETRIC_ALGS,
        required_alg=client.token_endpoint_auth_signing_alg, error=InvalidClient,
    )
    # RFC 7523 §3 (1, 2): iss and sub are both the client_id
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("iss and sub must be the client_id")
    # §3 (3): aud identifies this authorization server
    aud = claims.get("aud")
    named = aud if isinstance(aud, list) else [aud]
    if not audiences.intersection(a for a in named if isinstance(a, str)):
        raise InvalidClient("aud must be the issuer or the endpoint")
    # §3 (4): exp is required and in the future
    exp = claims.get("exp")
    now = fake.now()
    if not isinstance(exp, int | float) or exp <= now:
        raise InvalidClient("the client assertion is expired or has no exp")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + 5):
        raise InvalidClient("the client assertion is not valid yet")
    # §3 (7): jti lets us refuse replays; the assertion is single-use until it expires
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient("the client assertion has no jti")
    if not fake.use_jti(client.client_id, jti, float(exp)):
        raise InvalidClient("the client assertion was already used (jti replay)")
    return client
