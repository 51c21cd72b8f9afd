"""The opening step of every endpoint behind an access token (``/userinfo``, ``/payments/{id}``,
the event stream endpoints): read the token from the request, find it, check its DPoP binding.

RFC 6750 §2.1 (``Authorization: Bearer``) or RFC 9449 §7.1 (``Authorization: DPoP`` with a proof),
or the RFC 6750 §2.2 form body; never both, never the query (RFC 6750 §2.3, §5.3).
"""

from __future__ import annotations

from flask import request

from aggregator.errors import InsufficientScope, InvalidBearerToken, InvalidRequest
from aggregator.oauth import dpop
from aggregator.oauth.params import FORM
from aggregator.services import Services
from aggregator.store.tokens import AccessTokenRecord


def access_token_for(svc: Services, endpoint_url: str, *, scope: str) -> AccessTokenRecord:
    """The active access token presented to ``endpoint_url``, proven when DPoP-bound, and
    carrying ``scope`` (RFC 6750 §3.1 ``insufficient_scope`` otherwise)."""
    scheme, token = presented_token()
    record = svc.store.tokens.find_access_token(token)
    if record is None:
        raise InvalidBearerToken("The access token is invalid, expired or revoked.")
    dpop.check_presentation(svc, scheme=scheme, token=token, jkt=record.jkt,
                            client_id=record.client_id, endpoint_url=endpoint_url)
    if scope not in record.scopes:
        raise InsufficientScope(f"This token was not issued with the {scope} scope.", scope=scope)
    return record


def presented_token() -> tuple[str, str]:
    """The scheme (``bearer`` or ``dpop``) and the token."""
    header = request.headers.get("Authorization", "")
    in_body = request.method == "POST" and request.mimetype == FORM and "access_token" in request.form
    if header and in_body:
        raise InvalidRequest("Send the access token once (RFC 6750 §2).")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not token.strip():
            raise InvalidBearerToken("Use the Bearer or DPoP scheme.")
        return scheme.lower(), token.strip()
    if in_body:
        return "bearer", request.form["access_token"]
    raise InvalidBearerToken("An access token is required.", with_code=False)
