"""Configuration from ``MONEYHUB_*`` environment variables, validated at start-up.

Each field is the lower-cased suffix of its variable (``MONEYHUB_CLIENT_ID`` -> ``client_id``).
The first eight are the product contract (ARCHITECTURE.md); the rest are optional tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from aggregator.upstream.plugin_keys import JWKSField, SigningKey, signing_key
from plugins.moneyhub.authorization import MAX_CONSENT_DAYS, MAX_HISTORY_MONTHS, PERMISSIONS

DEFAULT_DATA_API_URL = "https://api.moneyhub.co.uk/v3"
CONNECTION_TYPES = ("test", "api", "legacy", "all")


class CommaList(fields.Field):
    """``a,b, c`` -> ``["a", "b", "c"]`` (an environment variable holds one string)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, list):
            items = value
        elif isinstance(value, str):
            items = value.split(",")
        else:
            raise ValidationError("Not a comma-separated list.")
        return [str(item).strip() for item in items if str(item).strip()]


class MoneyhubConfig(Schema):
    """The plugin's settings; errors name the field, the loader adds the ``MONEYHUB_`` prefix."""

    identity_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    data_api_url = fields.Url(
        load_default=DEFAULT_DATA_API_URL, require_tld=False, schemes={"http", "https"}
    )
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    private_jwks = JWKSField(load_default=None)
    auth_method = fields.String(
        load_default="client_secret_basic",
        validate=validate.OneOf(["client_secret_basic", "private_key_jwt"]),
    )
    response_type = fields.String(
        load_default="code", validate=validate.OneOf(["code", "code id_token"])
    )
    connection_type = fields.String(load_default="test", validate=validate.OneOf(CONNECTION_TYPES))
    # optional tuning, documented in docs/moneyhub.md
    offline_access = fields.Boolean(load_default=False)
    consent_days = fields.Integer(
        load_default=None, validate=validate.Range(min=1, max=MAX_CONSENT_DAYS)
    )
    history_months = fields.Integer(
        load_default=None, validate=validate.Range(min=1, max=MAX_HISTORY_MONTHS)
    )
    permissions = CommaList(load_default=list, validate=validate.ContainsOnly(sorted(PERMISSIONS)))
    permissions_action = fields.String(load_default=None, validate=validate.OneOf(["replace"]))
    category_type = fields.String(
        load_default=None, validate=validate.OneOf(["personal", "business"])
    )
    webhook_secret = fields.String(load_default=None, validate=validate.Length(min=16))
    cache_ttl = fields.Integer(load_default=3600, validate=validate.Range(min=0, max=86400))
    status_ttl = fields.Integer(load_default=30, validate=validate.Range(min=0, max=3600))

    @validates_schema
    def _credentials(self, data: dict[str, Any], **kwargs: Any) -> None:
        method = data.get("auth_method")
        if method == "client_secret_basic" and not data.get("client_secret"):
            raise ValidationError("Required for client_secret_basic.", "client_secret")
        if method == "private_key_jwt" and not data.get("private_jwks"):
            raise ValidationError("Required for private_key_jwt.", "private_jwks")

    @post_load
    def _strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["identity_url"] = data["identity_url"].rstrip("/")
        data["data_api_url"] = data["data_api_url"].rstrip("/")
        return data


@dataclass(frozen=True)
class MoneyhubSettings:
    """The loaded configuration, typed."""

    identity_url: str
    client_id: str
    data_api_url: str = DEFAULT_DATA_API_URL
    client_secret: str | None = None
    private_jwks: dict[str, Any] | None = None
    auth_method: str = "client_secret_basic"
    response_type: str = "code"
    connection_type: str = "test"
    offline_access: bool = False
    consent_days: int | None = None
    history_months: int | None = None
    permissions: list[str] = field(default_factory=list)
    permissions_action: str | None = None
    category_type: str | None = None
    webhook_secret: str | None = None
    #: seconds discovery, keys and bank lists are cached (0: not cached)
    cache_ttl: int = 3600
    #: seconds a user's connection list is trusted (0: asked every time)
    status_ttl: int = 30

    @cached_property
    def signing_key(self) -> SigningKey | None:
        """The private JWKS's first signing key; None means HS256 with the client secret."""
        return signing_key(self.private_jwks) if self.private_jwks else None

    @property
    def issuer(self) -> str:
        """Moneyhub's issuer: discovery lives under it (seed 001 "Discovery")."""
        return f"{self.identity_url}/oidc"
