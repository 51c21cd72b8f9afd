"""Configuration of the generic OpenID Connect / OAuth 2.0 plugin, from ``OIDC_*`` variables.

Each field is the lower-cased suffix of its variable (``OIDC_CLIENT_ID`` -> ``client_id``):

``issuer``          the upstream's issuer URL (the default for institutions that name none)
``client_id``       our client at the upstream(s)
``client_secret``   its secret (``client_secret_basic`` / ``client_secret_post``)
``auth_method``     ``client_secret_basic`` (default), ``client_secret_post`` or ``private_key_jwt``
``private_jwks``    for ``private_key_jwt``: a private JWKS as JSON, or ``@/path/to/file``
``institutions``    JSON list (or ``@path``) of ``{"id", "name", "issuer"?, "endpoint"?,
                    "description"?, "icon_url"?}``; default: one institution at ``issuer``
``institution_name``  that default institution's name (default: the issuer's host)
``endpoint``        template of the API base handed to apps, e.g.
                    ``https://api.bank.example/customers/{sub}``; ``{name}`` is replaced by the
                    claim ``name`` from the token response, the ID token or userinfo
                    (default ``{endpoint}``: a claim of that name)
``scopes``          JSON object: our data scope -> the upstream's scope(s)
``extra_scopes``    scopes always asked for at link time, e.g. ``openid offline_access``
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from aggregator.upstream.contract import DATA_SCOPES

# The private-JWKS field and its signing-key checks are shared with the Moneyhub plugin.
from aggregator.upstream.plugin_keys import JWKSField
from config import json_setting

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
DEFAULT_SCOPES = {
    "accounts:read": "accounts",
    "balances:read": "balances",
    "transactions:read": "transactions",
}
INSTITUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.:-]+)\}")


class _UpstreamUrl(fields.Url):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(schemes={"http", "https"}, require_tld=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).rstrip("/")


class EndpointTemplate(fields.String):
    """A URL template whose ``{claim}`` placeholders are filled in at link time."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        template = super()._deserialize(value, attr, data, **kwargs)
        if not PLACEHOLDER.sub("x", template).strip():
            raise ValidationError("An empty endpoint template.")
        if "{" in PLACEHOLDER.sub("", template) or "}" in PLACEHOLDER.sub("", template):
            raise ValidationError("Placeholders are {claim_name}: letters, digits, _ . : -")
        return template


class InstitutionSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(INSTITUTION_ID))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    issuer = _UpstreamUrl(load_default=None)
    endpoint = EndpointTemplate(load_default=None)
    description = fields.String(load_default=None)
    icon_url = fields.Url(load_default=None, require_tld=False)


class InstitutionList(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        parsed = json_setting(value)
        if not isinstance(parsed, list) or not parsed:
            raise ValidationError("A non-empty JSON list of institutions.")
        institutions = InstitutionSchema(many=True).load(parsed)
        ids = [institution["id"] for institution in institutions]
        if len(ids) != len(set(ids)):
            raise ValidationError("Institution ids must be unique.")
        return institutions


class ScopeMap(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        parsed = json_setting(value)
        if not isinstance(parsed, dict) or not all(
            isinstance(v, str) and v.strip() for v in parsed.values()
        ):
            raise ValidationError('A JSON object such as {"accounts:read": "accounts"}.')
        unknown = set(parsed) - DATA_SCOPES
        if unknown:
            raise ValidationError(f"Unknown data scopes: {', '.join(sorted(unknown))}.")
        return {scope: upstream.strip() for scope, upstream in parsed.items()}


class OIDCConfig(Schema):
    """The plugin's settings; errors name the field, the loader adds the ``OIDC_`` prefix."""

    issuer = _UpstreamUrl(load_default=None)
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    auth_method = fields.String(
        load_default="client_secret_basic", validate=validate.OneOf(AUTH_METHODS)
    )
    private_jwks = JWKSField(load_default=None)
    institutions = InstitutionList(load_default=None)
    institution_name = fields.String(load_default=None, validate=validate.Length(min=1))
    endpoint = EndpointTemplate(load_default="{endpoint}")
    scopes = ScopeMap(load_default=lambda: dict(DEFAULT_SCOPES))
    extra_scopes = fields.String(load_default="")

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        method = data.get("auth_method")
        if method in ("client_secret_basic", "client_secret_post") and not data.get(
            "client_secret"
        ):
            raise ValidationError(f"Required for {method}.", "client_secret")
        if method == "private_key_jwt" and not data.get("private_jwks"):
            raise ValidationError("Required for private_key_jwt.", "private_jwks")
        institutions = data.get("institutions")
        if institutions is None and not data.get("issuer"):
            raise ValidationError("Give an issuer, or institutions that each name one.", "issuer")
        if institutions and not data.get("issuer"):
            missing = [i["id"] for i in institutions if not i.get("issuer")]
            if missing:
                raise ValidationError(
                    f"No issuer for {', '.join(missing)} and no default issuer.", "institutions"
                )

    @post_load
    def _defaults(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["institutions"] is None:
            name = data["institution_name"] or urlsplit(data["issuer"]).hostname
            data["institutions"] = [{"id": "default", "name": name}]
        for institution in data["institutions"]:
            institution["issuer"] = institution.get("issuer") or data["issuer"]
            institution["endpoint"] = institution.get("endpoint") or data["endpoint"]
        return data
