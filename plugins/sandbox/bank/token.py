"""The token endpoint (RFC 6749 §3.2) and revocation endpoint (RFC 7009) of each institution."""

from __future__ import annotations

import base64
import binascii

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from flask import Blueprint, Response, request

from .context import current_bank
from .errors import safe_description
from .faults import inject_failure, inject_latency
from .institutions import Institution

bp = Blueprint("token", __name__)

GRANT_TYPES = ("authorization_code", "refresh_token")


@bp.post("/<institution:institution>/token")
def token(institution: Institution) -> Response:
    count_request(institution)
    inject_latency()
    inject_failure()
    reject_duplicate_parameters()
    reject_undecodable_credentials()
    require_grant_type()
    return current_bank().server.create_token_response()


@bp.post("/<institution:institution>/revoke")
def revoke(institution: Institution) -> Response:
    reject_duplicate_parameters()
    reject_undecodable_credentials()
    return current_bank().server.create_endpoint_response("revocation")


def count_request(institution: Institution) -> None:
    """Count every token request, failed or not, for ``/_admin/stats``."""
    grant_type = request.form.get("grant_type", "")
    # Only known names become counter keys, so junk input cannot grow the stats hash.
    label = grant_type if grant_type in GRANT_TYPES else "other"
    current_bank().store.count_token_request(institution.slug, label)


def reject_duplicate_parameters() -> None:
    # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
    for name in request.form:
        if len(request.form.getlist(name)) > 1:
            raise InvalidRequestError(safe_description(f"Parameter '{name}' is repeated."))


def reject_undecodable_credentials() -> None:
    """HTTP Basic credentials must decode to UTF-8 text (RFC 7617 §2.1); Authlib assumes so."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        base64.b64decode(credentials.strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError(
            description="Malformed HTTP Basic credentials.", status_code=401
        ) from None


def require_grant_type() -> None:
    # RFC 6749 §5.2: a missing required parameter is invalid_request, not an unsupported type.
    if not request.form.get("grant_type"):
        raise InvalidRequestError("Missing 'grant_type'.")
