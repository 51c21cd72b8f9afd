"""The introspection endpoint's wire formats (RFC 7662 §2.1, §2.2) as marshmallow schemas,
from which the OpenAPI document (:mod:`aggregator.openapi`) describes ``POST /introspect``."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from aggregator.oauth.schemas import ClientAuthSchema, GrantedDetailSchema


class IntrospectionRequestSchema(ClientAuthSchema):
    """RFC 7662 §2.1: ``token`` is required; the hint is accepted and ignored."""

    token = fields.String(required=True)
    token_type_hint = fields.String()
    rejected_registration = fields.String(metadata={"description": (
        "Extension (docs/introspection.md): the registration_id of an institution that refused "
        "the upstream token this AS released; that token is dropped and refreshed (at most once "
        "per registration every 30 s) before the answer. Must be a registration the token "
        "reaches, else invalid_request.")})


class InstitutionEntrySchema(Schema):
    """One registration the token reaches: a fresh upstream token when ``ok``, otherwise the
    status and a readable ``error`` (and no token)."""

    class Meta:
        unknown = RAISE

    endpoint = fields.String(required=True)
    access_token = fields.String()
    token_type = fields.String()
    expires_at = fields.Integer()
    provider = fields.String(required=True)
    registration_id = fields.String(required=True)
    status = fields.String(required=True,
                           validate=validate.OneOf(["ok", "reauth_required", "expired", "error"]))
    error = fields.String()


class IntrospectionResponseSchema(Schema):
    """RFC 7662 §2.2 members, ``authorization_details`` (RFC 9396 §9.1) and ``institutions``
    keyed by institution name; exactly ``{"active": false}`` for an inactive token."""

    class Meta:
        unknown = RAISE

    active = fields.Boolean(required=True)
    scope = fields.String()
    client_id = fields.String()
    sub = fields.String()
    exp = fields.Integer()
    iat = fields.Integer()
    iss = fields.String()
    token_type = fields.String()
    cnf = fields.Dict(keys=fields.String(), values=fields.String(),
                      metadata={"description": "RFC 9449 §6.2: {\"jkt\": ...} for a DPoP-bound token."})
    grant_id = fields.String()
    authorization_details = fields.List(fields.Nested(GrantedDetailSchema))
    institutions = fields.Dict(keys=fields.String(), values=fields.Nested(InstitutionEntrySchema))
