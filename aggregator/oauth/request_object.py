"""Signed authorization requests: JWT-Secured Authorization Request (RFC 9101).

The ``request`` parameter is a JWS signed with one of the client's keys; unsigned (``none``)
and MAC-signed objects are refused. Once verified, only its claims are the request (§5).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aggregator.errors import InvalidRequestObject
from aggregator.oauth.client_keys import SIGNING_ALGS, verify_client_jwt
from aggregator.oauth.profile import rules
from aggregator.services import Services
from aggregator.store.clients import ClientRecord

LEEWAY = 60
#: FAPI 2.0 Message Signing §5.3.1: exp no more than 60 minutes after nbf
MAX_LIFETIME = 3600
_JWT_CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "jti")


def request_object_params(svc: Services, client: ClientRecord, value: str) -> dict[str, str]:
    """Verify a request object and return its authorization parameters as strings."""
    algs = rules(svc.settings).client_algs(client.request_object_signing_alg, SIGNING_ALGS)
    _, claims = verify_client_jwt(svc.client_jwks, client, value, algs, InvalidRequestObject)
    now = int(time.time())
    if claims.get("iss") != client.client_id:
        raise InvalidRequestObject("The request object's iss must be the client_id.")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or svc.issuer not in audiences:  # RFC 9101 §4
        raise InvalidRequestObject("The request object's aud must be the issuer.")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp + LEEWAY <= now:
        raise InvalidRequestObject("The request object needs an exp in the future.")
    if exp > now + MAX_LIFETIME:
        raise InvalidRequestObject("The request object lives too long (at most one hour).")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or nbf > now + LEEWAY):
        raise InvalidRequestObject("The request object is not valid yet (nbf).")
    if claims.get("client_id") not in (None, client.client_id):  # RFC 9101 §5
        raise InvalidRequestObject("The request object's client_id is not this client.")
    if "request" in claims or "request_uri" in claims:
        raise InvalidRequestObject("A request object cannot contain request or request_uri.")
    params: dict[str, str] = {"client_id": client.client_id}
    for name, item in claims.items():
        if name in _JWT_CLAIMS or item is None:
            continue
        params[name] = _as_parameter(item)
    return params


def _as_parameter(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
