"""The institution list and each institution's RFC 8414 authorization server metadata."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from .context import current_bank
from .institutions import INSTITUTIONS, Institution
from .oauth import CLIENT_AUTH_METHODS, PAYMENT_SCOPE, SCOPES

bp = Blueprint("metadata", __name__)


@bp.get("/institutions")
def institutions() -> list[dict[str, str]]:
    public_url = current_bank().settings.public_url
    return [
        {"id": i.slug, "name": i.name, "issuer": i.issuer(public_url)}
        for i in INSTITUTIONS.values()
    ]


# RFC 8414 §3 puts the well-known segment between host and issuer path; the issuer-relative
# form is what OpenID Connect Discovery-style clients try, so both answer the same document.
@bp.get("/.well-known/oauth-authorization-server/<institution:institution>")
@bp.get("/<institution:institution>/.well-known/oauth-authorization-server")
def authorization_server_metadata(institution: Institution) -> dict[str, Any]:
    issuer = institution.issuer(current_bank().settings.public_url)
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": f"{issuer}/revoke",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "scopes_supported": [*SCOPES, *([PAYMENT_SCOPE] if institution.makes_payments else [])],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "authorization_response_iss_parameter_supported": True,
    }
