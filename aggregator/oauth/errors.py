"""Protocol errors of the provider, beyond the shared ones in :mod:`aggregator.errors`."""

from __future__ import annotations

from typing import Any

from aggregator.errors import AccessDenied, InvalidToken, ProtocolError

__all__ = [
    "AuthorizationErrorRedirect", "ConsentRequired", "GrantNotFound", "InsufficientScope",
    "InteractionRequired", "InvalidBearerToken", "InvalidRequestObject", "InvalidRequestUri",
    "LoginRequired", "RegistrationClosed", "UnsupportedGrantType", "UnsupportedResponseType",
    "UnsupportedTokenType",
]


class UnsupportedResponseType(ProtocolError):
    """RFC 6749 §4.1.2.1."""

    error = "unsupported_response_type"


class UnsupportedGrantType(ProtocolError):
    """RFC 6749 §5.2."""

    error = "unsupported_grant_type"


class UnsupportedTokenType(ProtocolError):
    """RFC 7009 §2.2.1."""

    error = "unsupported_token_type"


class InvalidRequestObject(ProtocolError):
    """RFC 9101 §6.1 / OIDC Core §3.1.2.6."""

    error = "invalid_request_object"


class InvalidRequestUri(ProtocolError):
    """RFC 9126 §4 / RFC 9101 §6.2."""

    error = "invalid_request_uri"


class LoginRequired(ProtocolError):
    """OIDC Core §3.1.2.6: ``prompt=none`` but nobody is logged in."""

    error = "login_required"


class ConsentRequired(ProtocolError):
    """OIDC Core §3.1.2.6: ``prompt=none`` but the person has not consented yet."""

    error = "consent_required"


class InteractionRequired(ProtocolError):
    error = "interaction_required"


class GrantNotFound(ProtocolError):
    """FAPI Grant Management: unknown grant, or one of another client."""

    error = "invalid_grant_id"
    status_code = 404


class RegistrationClosed(AccessDenied):
    """RFC 7591 registration is closed: no initial access token is configured."""


class InvalidBearerToken(InvalidToken):
    """RFC 6750 §3.1: the token is missing, expired or revoked (with its challenge)."""

    def __init__(self, description: str | None = None, *, realm: str = "aggregator",
                 with_code: bool = True) -> None:
        super().__init__(description)
        challenge = f'Bearer realm="{realm}"'
        if with_code:  # §3.1: no error code when the request carried no token at all
            challenge += f', error="{self.error}"'
        self.headers = {"WWW-Authenticate": challenge}


class InsufficientScope(ProtocolError):
    """RFC 6750 §3.1."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str | None = None, *, scope: str = "openid") -> None:
        super().__init__(description)
        self.headers = {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}


class AuthorizationErrorRedirect(Exception):
    """An authorization error to send back to the client's validated redirect URI.

    Raised once the client and its redirect URI are known (RFC 6749 §4.1.2.1); before that,
    errors are shown to the person and never redirected.
    """

    def __init__(self, error: ProtocolError, target: Any) -> None:
        super().__init__(error.error)
        self.protocol_error = error
        self.target = target  # aggregator.oauth.responses.ResponseTarget


def describe(error: ProtocolError) -> dict[str, Any]:
    """``error`` and ``error_description`` for an authorization error response."""
    return {key: value for key, value in error.body().items() if key in ("error", "error_description")}
