"""Discovery (RFC 8414, OpenID Connect Discovery 1.0 §3) and our public keys (RFC 7517)."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from aggregator.introspection.signed import ALGORITHM as SIGNED_INTROSPECTION_ALG
from aggregator.oauth import dpop
from aggregator.oauth.authorization_details import TYPES_SUPPORTED as DETAIL_TYPES
from aggregator.oauth.authorization_request import GRANT_MANAGEMENT_ACTIONS
from aggregator.oauth.blueprints import api
from aggregator.oauth.claims import CLAIMS_SUPPORTED
from aggregator.oauth.client_auth import AUTH_METHODS
from aggregator.oauth.client_keys import SIGNING_ALGS
from aggregator.oauth.client_metadata import GRANT_TYPES, ID_TOKEN_ALGS, RESPONSE_TYPES
from aggregator.oauth.profile import rules
from aggregator.oauth.responses import RESPONSE_MODES
from aggregator.oauth.scopes import SCOPES_SUPPORTED
from aggregator.services import Services, services


def server_metadata(svc: Services) -> dict[str, Any]:
    """Every endpoint and every supported value, as the code actually implements them and the
    server profile (:mod:`.profile`) allows them."""
    urls = svc.endpoints
    profile = rules(svc.settings)
    auth_methods = profile.auth_methods_of(AUTH_METHODS)
    signing_algs = list(profile.algs_of(SIGNING_ALGS))
    return {
        "issuer": svc.issuer,
        "authorization_endpoint": urls.authorization,
        "token_endpoint": urls.token,
        "pushed_authorization_request_endpoint": urls.par,
        "introspection_endpoint": urls.introspection,
        "revocation_endpoint": urls.revocation,
        "registration_endpoint": urls.registration,
        "userinfo_endpoint": urls.userinfo,
        "jwks_uri": urls.jwks,
        "grant_management_endpoint": urls.grant_management,
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": profile.response_types_of(RESPONSE_TYPES),
        "response_modes_supported": profile.response_modes_of(RESPONSE_MODES),
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["pairwise"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        # RFC 9701 §7: signed introspection responses
        "introspection_signing_alg_values_supported": [profile.signing_alg(SIGNED_INTROSPECTION_ALG)],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "require_pushed_authorization_requests": profile.require_par,  # RFC 9126 §5
        "request_parameter_supported": True,
        # only the request_uri values our PAR endpoint hands out; we never fetch a client's URL
        "request_uri_parameter_supported": False,
        "request_object_signing_alg_values_supported": signing_algs,
        "id_token_signing_alg_values_supported": list(profile.algs_of(ID_TOKEN_ALGS)),
        "dpop_signing_alg_values_supported": list(profile.algs_of(dpop.SIGNING_ALGS)),  # RFC 9449 §5.1
        "claims_parameter_supported": True,
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claim_types_supported": ["normal"],
        "prompt_values_supported": ["none", "login", "consent"],
        # RFC 9396 §10
        "authorization_details_types_supported": list(DETAIL_TYPES),
        # OpenID Grant Management for OAuth 2.0 §6
        "grant_management_actions_supported": list(GRANT_MANAGEMENT_ACTIONS),
        "grant_management_action_required": False,
    }


@api.get("/.well-known/openid-configuration")
@api.get("/.well-known/oauth-authorization-server")
def discovery():
    response = jsonify(server_metadata(services()))
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@api.get("/jwks")
def jwks():
    response = jsonify(services().signing_keys.public_jwks())
    response.headers["Content-Type"] = "application/jwk-set+json"
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
