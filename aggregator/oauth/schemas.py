"""The provider's wire formats as marshmallow schemas: what each endpoint reads and answers.

The OpenAPI document (:mod:`aggregator.openapi`) is generated from these, together with the
client metadata schema the registration endpoint validates with
(:class:`aggregator.oauth.client_metadata.ClientMetadataSchema`). Requests ignore members they
do not name (RFC 6749 §3.1: unknown parameters are ignored); responses name every member.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from aggregator.oauth.authorization_details import ACCOUNT_INFORMATION
from aggregator.oauth.authorization_request import GRANT_MANAGEMENT_ACTIONS
from aggregator.oauth.client_auth import JWT_BEARER
from aggregator.oauth.client_metadata import GRANT_TYPES, ClientMetadataSchema
from aggregator.oauth.payment_initiation import PAYMENT_INITIATION, PAYMENT_STATUSES
from aggregator.oauth.responses import RESPONSE_MODES


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


class _Request(Schema):
    class Meta:
        unknown = EXCLUDE


class _Response(Schema):
    class Meta:
        unknown = RAISE  # documented as additionalProperties: false


# ------------------------------------------------------------------ client authentication


class ClientAuthSchema(_Request):
    """Client authentication in the form body (RFC 6749 §2.3.1, RFC 7523 §2.2); the other
    method, ``client_secret_basic``, is the ``Authorization`` header."""

    client_id = fields.String(metadata=_doc("The client (client_secret_post, none; optional with "
                                            "private_key_jwt, where it must equal the assertion's sub)."))
    client_secret = fields.String(metadata=_doc("client_secret_post: the client's secret."))
    client_assertion_type = fields.String(validate=validate.OneOf([JWT_BEARER]),
                                          metadata=_doc("private_key_jwt (RFC 7523 §2.2)."))
    client_assertion = fields.String(metadata=_doc("private_key_jwt: a JWT signed with one of the "
                                                   "client's registered keys (RFC 7523 §3)."))


# ------------------------------------------------------------------ shared members


class GrantedDetailSchema(_Response):
    """RFC 9396 §7: what was granted at one institution (``account_information``: ``actions``,
    ``registration_id``, ``name``), or the payment made (``payment_initiation``:
    ``instructedAmount``, ``creditorName``, ``payment_id``, ``status``)."""

    type = fields.String(required=True, validate=validate.OneOf([ACCOUNT_INFORMATION,
                                                                 PAYMENT_INITIATION]))
    actions = fields.List(fields.String())
    registration_id = fields.String()
    name = fields.String()
    instructedAmount = fields.Dict(keys=fields.String(), values=fields.String())  # noqa: N815
    creditorName = fields.String()  # noqa: N815 - RFC 9396 names
    payment_id = fields.String(metadata=_doc("Read it at GET /payments/{payment_id}."))
    status = fields.String(validate=validate.OneOf(PAYMENT_STATUSES))


# ------------------------------------------------------------------ /token


class TokenRequestSchema(ClientAuthSchema):
    """RFC 6749 §4.1.3, §4.4.2, §6; PKCE RFC 7636 §4.5."""

    grant_type = fields.String(required=True, validate=validate.OneOf(GRANT_TYPES))
    code = fields.String(metadata=_doc("authorization_code: the code."))
    redirect_uri = fields.String(metadata=_doc("authorization_code: as in the authorization request."))
    code_verifier = fields.String(metadata=_doc("authorization_code: the PKCE verifier (RFC 7636)."))
    refresh_token = fields.String(metadata=_doc("refresh_token: the refresh token."))
    scope = fields.String(metadata=_doc("refresh_token: a narrower scope; client_credentials: data scopes."))


class TokenResponseSchema(_Response):
    """RFC 6749 §5.1 plus ``authorization_details`` (RFC 9396 §7), ``grant_id`` and
    ``introspection_endpoint``."""

    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer", "DPoP"]),
                               metadata=_doc("DPoP when the request carried a DPoP proof (RFC 9449 §5)."))
    expires_in = fields.Integer(required=True)
    scope = fields.String(required=True)
    refresh_token = fields.String(metadata=_doc("Only with offline_access; not in the answer to a "
                                                "refresh under the fapi2 profile (no rotation)."))
    authorization_details = fields.List(fields.Nested(GrantedDetailSchema))
    id_token = fields.String(metadata=_doc("Only with openid."))
    grant_id = fields.String(metadata=_doc("Absent for client_credentials."))
    introspection_endpoint = fields.String(required=True)


# ------------------------------------------------------------------ /par


class PushedAuthorizationRequestSchema(ClientAuthSchema):
    """RFC 9126 §2.1: the authorization request's parameters, or a ``request`` object."""

    response_type = fields.String(metadata=_doc("code (default) or code id_token."))
    redirect_uri = fields.String()
    scope = fields.String()
    state = fields.String()
    nonce = fields.String()
    code_challenge = fields.String()
    code_challenge_method = fields.String(validate=validate.OneOf(["S256"]))
    response_mode = fields.String(validate=validate.OneOf(RESPONSE_MODES))
    prompt = fields.String(metadata=_doc("Space-separated: none, login, consent."))
    max_age = fields.String(metadata=_doc("Seconds, a non-negative integer."))
    claims = fields.String(metadata=_doc("OIDC Core §5.5 claims request, JSON."))
    authorization_details = fields.String(metadata=_doc("RFC 9396 §2, a JSON array."))
    grant_management_action = fields.String(validate=validate.OneOf(GRANT_MANAGEMENT_ACTIONS))
    grant_id = fields.String()
    dpop_jkt = fields.String(metadata=_doc("RFC 9449 §10: the thumbprint of the DPoP key the code "
                                           "must be redeemed with (or send a DPoP proof)."))
    request = fields.String(metadata=_doc("RFC 9101 request object (a signed JWT)."))


class PushedAuthorizationResponseSchema(_Response):
    """RFC 9126 §2.2."""

    request_uri = fields.String(required=True)
    expires_in = fields.Integer(required=True)


# ------------------------------------------------------------------ /revoke


class RevocationRequestSchema(ClientAuthSchema):
    """RFC 7009 §2.1."""

    token = fields.String(required=True)
    token_type_hint = fields.String(validate=validate.OneOf(["access_token", "refresh_token"]))


# ------------------------------------------------------------------ /grants/{grant_id}


class GrantScopeSchema(_Response):
    scope = fields.String(required=True)


class GrantInstitutionSchema(_Response):
    registration_id = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    status = fields.String(required=True)


class GrantSchema(_Response):
    """OpenID Grant Management §5.3: the grant as its client may see it."""

    grant_id = fields.String(required=True)
    client_id = fields.String(required=True)
    scopes = fields.List(fields.Nested(GrantScopeSchema), required=True)
    authorization_details = fields.List(fields.Nested(GrantedDetailSchema), required=True)
    institutions = fields.List(fields.Nested(GrantInstitutionSchema), required=True)
    created_at = fields.Integer(required=True)
    updated_at = fields.Integer(required=True)


# ------------------------------------------------------------------ /userinfo


class UserinfoRequestSchema(_Request):
    """RFC 6750 §2.2: the access token in the form body (instead of the header)."""

    access_token = fields.String()


class UserinfoSchema(_Response):
    """OIDC Core §5.3.2."""

    sub = fields.String(required=True, metadata=_doc("Pairwise: each app sees its own identifier."))
    preferred_username = fields.String(metadata=_doc("When the claims parameter asked for it."))


# ------------------------------------------------------------------ /register


class ClientUpdateSchema(ClientMetadataSchema):
    """RFC 7592 §2.2: the whole metadata again, with this client's ``client_id``."""

    client_id = fields.String(required=True, metadata=_doc("Must be the client_id in the path."))
    client_secret = fields.String(metadata=_doc("If sent, the current secret (it cannot be chosen)."))


class ClientInformationSchema(ClientMetadataSchema):
    """RFC 7591 §3.2.1, RFC 7592 §3: the registered metadata plus the credentials issued now."""

    client_id = fields.String(required=True)
    client_id_issued_at = fields.Integer(required=True)
    client_secret = fields.String(metadata=_doc("Secret-based methods only, and shown only once."))
    client_secret_expires_at = fields.Integer(metadata=_doc("0: never (confidential clients)."))
    registration_access_token = fields.String(required=True,
                                              metadata=_doc("RFC 7592: rotates on every read and update."))
    registration_client_uri = fields.String(required=True)


# ------------------------------------------------------------------ discovery and keys


class ServerMetadataSchema(_Response):
    """RFC 8414 §2 and OpenID Connect Discovery 1.0 §3, as ``metadata.server_metadata`` builds it."""

    issuer = fields.String(required=True)
    authorization_endpoint = fields.String(required=True)
    token_endpoint = fields.String(required=True)
    pushed_authorization_request_endpoint = fields.String(required=True)
    introspection_endpoint = fields.String(required=True)
    revocation_endpoint = fields.String(required=True)
    registration_endpoint = fields.String(required=True)
    userinfo_endpoint = fields.String(required=True)
    jwks_uri = fields.String(required=True)
    grant_management_endpoint = fields.String(required=True)
    scopes_supported = fields.List(fields.String(), required=True)
    response_types_supported = fields.List(fields.String(), required=True)
    response_modes_supported = fields.List(fields.String(), required=True)
    grant_types_supported = fields.List(fields.String(), required=True)
    subject_types_supported = fields.List(fields.String(), required=True)
    token_endpoint_auth_methods_supported = fields.List(fields.String(), required=True)
    token_endpoint_auth_signing_alg_values_supported = fields.List(fields.String(), required=True)
    revocation_endpoint_auth_methods_supported = fields.List(fields.String(), required=True)
    revocation_endpoint_auth_signing_alg_values_supported = fields.List(fields.String(), required=True)
    introspection_endpoint_auth_methods_supported = fields.List(fields.String(), required=True)
    introspection_endpoint_auth_signing_alg_values_supported = fields.List(fields.String(), required=True)
    introspection_signing_alg_values_supported = fields.List(fields.String(), required=True)
    code_challenge_methods_supported = fields.List(fields.String(), required=True)
    authorization_response_iss_parameter_supported = fields.Boolean(required=True)
    require_pushed_authorization_requests = fields.Boolean(required=True)
    request_parameter_supported = fields.Boolean(required=True)
    request_uri_parameter_supported = fields.Boolean(required=True)
    request_object_signing_alg_values_supported = fields.List(fields.String(), required=True)
    id_token_signing_alg_values_supported = fields.List(fields.String(), required=True)
    dpop_signing_alg_values_supported = fields.List(fields.String(), required=True)
    claims_parameter_supported = fields.Boolean(required=True)
    claims_supported = fields.List(fields.String(), required=True)
    claim_types_supported = fields.List(fields.String(), required=True)
    prompt_values_supported = fields.List(fields.String(), required=True)
    authorization_details_types_supported = fields.List(fields.String(), required=True)
    grant_management_actions_supported = fields.List(fields.String(), required=True)
    grant_management_action_required = fields.Boolean(required=True)


class JwkSetSchema(_Response):
    """RFC 7517 §5: the AS's public signing keys."""

    keys = fields.List(fields.Dict(), required=True)
