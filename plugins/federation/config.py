"""Configuration of the federation plugin, from ``FEDERATION_*`` variables.

``issuer``          the upstream aggregator's issuer URL (its discovery names every endpoint)
``client_id``       this server's client at the upstream (registered there, redirect URI
                    ``{our issuer}/connections/callback/federation``)
``client_secret``   its secret (``client_secret_basic`` / ``client_secret_post``)
``auth_method``     ``client_secret_basic`` (default), ``client_secret_post`` or ``private_key_jwt``
``private_jwks``    for ``private_key_jwt``: a private JWKS as JSON, or ``@/path/to/file``
``name``            what the chooser calls the upstream (default: its host)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from aggregator.upstream.plugin_keys import JWKSField
from plugins.oidc.config import AUTH_METHODS


class FederationConfig(Schema):
    """The plugin's settings; errors name the field, the loader adds the ``FEDERATION_`` prefix."""

    issuer = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    auth_method = fields.String(load_default="client_secret_basic", validate=validate.OneOf(AUTH_METHODS))
    private_jwks = JWKSField(load_default=None)
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))

    @validates_schema
    def _credentials(self, data: dict[str, Any], **kwargs: Any) -> None:
        method = data.get("auth_method")
        if method == "private_key_jwt":
            if not data.get("private_jwks"):
                raise ValidationError("Required for private_key_jwt.", "private_jwks")
        elif not data.get("client_secret"):
            raise ValidationError(f"Required for {method}.", "client_secret")

    @post_load
    def _defaults(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["issuer"] = data["issuer"].rstrip("/")
        data["name"] = data["name"] or urlsplit(data["issuer"]).netloc
        return data
