"""RFC 9701: the introspection response as a signed JWT, for clients that ask for it."""

from __future__ import annotations

import time
from typing import Any

from flask import Request
from joserfc import jwt

from aggregator.signing import SigningKeys

MEDIA_TYPE = "application/token-introspection+jwt"
ALGORITHM = "RS256"


def wants_jwt(request: Request) -> bool:
    """RFC 9701 §4: the client asks with ``Accept: application/token-introspection+jwt``."""
    accept = request.accept_mimetypes
    return accept.best_match(["application/json", MEDIA_TYPE]) == MEDIA_TYPE and accept[MEDIA_TYPE] > 0


def signed_response(body: dict[str, Any], *, issuer: str, audience: str, keys: SigningKeys,
                    alg: str = ALGORITHM) -> str:
    """RFC 9701 §5: ``iss``, ``aud`` (the client), ``iat`` and the response in
    ``token_introspection``; ``typ`` is ``token-introspection+jwt``. No top-level ``sub`` or
    ``exp``, so the JWT cannot pass for an access token (RFC 9701 §5, §8.1)."""
    record = keys.current(alg)
    header = {"alg": alg, "typ": "token-introspection+jwt", "kid": record.kid}
    claims = {"iss": issuer, "aud": audience, "iat": int(time.time()), "token_introspection": body}
    return jwt.encode(header, claims, keys.private_key(alg), algorithms=[alg])
