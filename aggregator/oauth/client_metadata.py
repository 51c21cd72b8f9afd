"""Client metadata (RFC 7591 §2, OIDC Dynamic Client Registration §2), validated with marshmallow.

Unknown members are ignored (RFC 7591 §2: "MUST ignore any client metadata it does not
understand"). A bad redirect URI is ``invalid_redirect_uri``, anything else
``invalid_client_metadata`` (RFC 7591 §3.2.2), including a ``jwks_uri`` the outbound policy
would not fetch (in production: not https, or a host on a private or loopback address).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from aggregator.errors import InvalidClientMetadata, InvalidRedirectUri
from aggregator.oauth.client_auth import AUTH_METHODS
from aggregator.oauth.client_keys import SIGNING_ALGS
from aggregator.oauth.scopes import SCOPES_SUPPORTED
from aggregator.outbound import OutboundError, OutboundPolicy
from config.settings import is_loopback_host

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
RESPONSE_TYPES = ("code", "code id_token")
ID_TOKEN_ALGS = ("RS256", "ES256", "PS256")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_web_url(value: str, what: str) -> None:
    """https, or http on a loopback host (development); absolute; no fragment."""
    if not isinstance(value, str) or len(value) > 2000 or _CONTROL.search(value) or " " in value:
        raise ValidationError(f"{what} must be an absolute URL.")
    parts = urlsplit(value)
    if not parts.netloc or not parts.hostname:
        raise ValidationError(f"{what} must be an absolute URL.")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        raise ValidationError(f"{what} must use https (http only on a loopback address).")
    if parts.fragment or value.endswith("#"):
        raise ValidationError(f"{what} must not contain a fragment.")


class WebUrl(fields.String):
    """An https (or loopback http) URL without fragment."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        _check_web_url(text, "The URL")
        return text


class RedirectUri(fields.String):
    """RFC 6749 §3.1.2: absolute, no fragment; compared later as an exact string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        _check_web_url(text, "A redirect URI")
        return text


class Jwks(fields.Dict):
    """A JWK Set of public signing keys."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        jwks = super()._deserialize(value, attr, data, **kwargs)
        keys = jwks.get("keys")
        if not isinstance(keys, list) or not keys or len(keys) > 20:
            raise ValidationError("jwks must be a JWK Set with 1 to 20 keys.")
        for key in keys:
            if not isinstance(key, dict):
                raise ValidationError("Every key must be a JSON object.")
            if key.get("kty") not in ("RSA", "EC"):
                raise ValidationError("Only RSA and EC keys are accepted.")
            if any(member in key for member in ("d", "p", "q", "dp", "dq", "qi")):
                raise ValidationError("jwks must contain public keys only: never send a private key.")
        try:
            KeySet.import_key_set(jwks)
        except (JoseError, ValueError, TypeError) as exc:
            raise ValidationError(f"jwks is not a valid JWK Set ({exc}).") from None
        return {"keys": keys}


class ScopeString(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        tokens = list(dict.fromkeys(token for token in text.split(" ") if token))
        unknown = [token for token in tokens if token not in SCOPES_SUPPORTED]
        if unknown:
            raise ValidationError(f"Unsupported scope(s): {', '.join(unknown)}.")
        return " ".join(tokens)


def _name(value: str) -> None:
    if not value.strip() or _CONTROL.search(value):
        raise ValidationError("Use a readable name without control characters.")


class ClientMetadataSchema(Schema):
    """The metadata a client may register."""

    class Meta:
        unknown = EXCLUDE

    redirect_uris = fields.List(RedirectUri(), load_default=list, validate=validate.Length(max=20))
    token_endpoint_auth_method = fields.String(load_default="client_secret_basic",
                                               validate=validate.OneOf(AUTH_METHODS))
    token_endpoint_auth_signing_alg = fields.String(load_default=None, allow_none=True,
                                                    validate=validate.OneOf(SIGNING_ALGS))
    grant_types = fields.List(fields.String(validate=validate.OneOf(GRANT_TYPES)),
                              load_default=lambda: ["authorization_code"])
    response_types = fields.List(fields.String(validate=validate.OneOf(RESPONSE_TYPES)),
                                 load_default=None)
    client_name = fields.String(load_default=None, allow_none=True,
                                validate=[validate.Length(min=1, max=100), _name])
    client_uri = WebUrl(load_default=None, allow_none=True)
    logo_uri = WebUrl(load_default=None, allow_none=True)
    policy_uri = WebUrl(load_default=None, allow_none=True)
    tos_uri = WebUrl(load_default=None, allow_none=True)
    contacts = fields.List(fields.String(validate=validate.Length(min=3, max=200)), load_default=list,
                           validate=validate.Length(max=10))
    scope = ScopeString(load_default=" ".join(SCOPES_SUPPORTED))
    jwks = Jwks(load_default=None, allow_none=True)
    jwks_uri = WebUrl(load_default=None, allow_none=True)
    id_token_signed_response_alg = fields.String(load_default="RS256",
                                                 validate=validate.OneOf(ID_TOKEN_ALGS))
    request_object_signing_alg = fields.String(load_default=None, allow_none=True,
                                               validate=validate.OneOf(SIGNING_ALGS))
    subject_type = fields.String(load_default="pairwise", validate=validate.OneOf(["pairwise"]))
    require_pushed_authorization_requests = fields.Boolean(load_default=False)
    dpop_bound_access_tokens = fields.Boolean(load_default=False)  # RFC 9449 §5.2
    resource_server_for = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                                      load_default=list, validate=validate.Length(max=100))

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        """The cross-member rules of RFC 7591 §2 and §2.1."""
        grant_types = data["grant_types"]
        response_types = data["response_types"]
        if response_types is None:
            response_types = ["code"] if "authorization_code" in grant_types else []
        if not grant_types:
            raise ValidationError("Register at least one grant type.", "grant_types")
        # §2.1: response type "code" goes with the authorization_code grant and back
        if bool(response_types) != ("authorization_code" in grant_types):
            raise ValidationError("response_types must be non-empty exactly when grant_types "
                                  "include authorization_code (RFC 7591 §2.1).", "response_types")
        if "refresh_token" in grant_types and "authorization_code" not in grant_types:
            raise ValidationError("refresh_token goes with authorization_code.", "grant_types")
        if "authorization_code" in grant_types and not data["redirect_uris"]:
            raise ValidationError("The authorization_code grant needs at least one redirect URI.",
                                  "redirect_uris")
        method = data["token_endpoint_auth_method"]
        if method == "none" and "client_credentials" in grant_types:
            raise ValidationError("A public client (none) cannot use client_credentials.", "grant_types")
        if data["jwks"] and data["jwks_uri"]:
            raise ValidationError("Register jwks or jwks_uri, not both (RFC 7591 §2).", "jwks")
        if method == "private_key_jwt" and not (data["jwks"] or data["jwks_uri"]):
            raise ValidationError("private_key_jwt needs jwks or jwks_uri.", "jwks")
        if data["token_endpoint_auth_signing_alg"] and method != "private_key_jwt":
            raise ValidationError("token_endpoint_auth_signing_alg only applies to private_key_jwt.",
                                  "token_endpoint_auth_signing_alg")

    @post_load
    def _defaults(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data["response_types"] is None:
            data["response_types"] = ["code"] if "authorization_code" in data["grant_types"] else []
        data["grant_types"] = list(dict.fromkeys(data["grant_types"]))
        data["response_types"] = list(dict.fromkeys(data["response_types"]))
        data["redirect_uris"] = list(dict.fromkeys(data["redirect_uris"]))
        data.pop("subject_type", None)
        return data


def load_client_metadata(document: Any, policy: OutboundPolicy) -> dict[str, Any]:
    """Validate a registration document; raise the RFC 7591 §3.2.2 error naming what is wrong.

    ``policy``: the rules the AS fetches a ``jwks_uri`` under; one it would refuse is refused
    now (a courtesy: the check when the AS connects is the one that holds).
    """
    if not isinstance(document, Mapping):
        raise InvalidClientMetadata("The registration request must be a JSON object.")
    try:
        metadata = ClientMetadataSchema().load(dict(document))
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        description = "; ".join(f"{name}: {_flatten(message)}" for name, message in messages.items())
        if "redirect_uris" in messages:
            raise InvalidRedirectUri(description) from None
        raise InvalidClientMetadata(description) from None
    if metadata["jwks_uri"]:
        try:
            policy.check_url(metadata["jwks_uri"])
        except OutboundError as exc:
            raise InvalidClientMetadata(f"jwks_uri: this server will not fetch it ({exc.host} "
                                        f"{exc.reason}).") from None
    return metadata


def _flatten(message: Any) -> str:
    if isinstance(message, dict):
        return " ".join(_flatten(value) for value in message.values())
    if isinstance(message, list):
        return " ".join(_flatten(value) for value in message)
    return str(message)
