"""Protocol errors of the fake, each carrying its RFC error code and HTTP status."""

from __future__ import annotations

from flask import Response, jsonify


class OAuthError(Exception):
    """An OAuth 2.0 error (RFC 6749 §5.2) rendered as JSON."""

    error: str = "invalid_request"
    status: int = 400

    def __init__(self, description: str, *, error: str | None = None, status: int | None = None):
        super().__init__(description)
        self.description = description
        if error is not None:
            self.error = error
        if status is not None:
            self.status = status

    def headers(self) -> dict[str, str]:
        return {}

    def response(self) -> Response:
        response = jsonify(error=self.error, error_description=self.description)
        response.status_code = self.status
        # RFC 6749 §5.1: responses carrying or refusing credentials are not cached
        response.headers["Cache-Control"] = "no-store"
        response.headers.update(self.headers())
        return response


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401 with ``WWW-Authenticate`` when the client tried HTTP Basic."""

    error = "invalid_client"
    status = 401

    def __init__(self, description: str, *, basic: bool = False) -> None:
        super().__init__(description)
        self.basic = basic

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="moneyhub"'} if self.basic else {}


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidRequestObject(OAuthError):
    """RFC 9101 §7 / OIDC Core §3.1.2.6: the request object does not verify."""

    error = "invalid_request_object"


class InvalidRequestUri(OAuthError):
    error = "invalid_request_uri"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class BearerError(OAuthError):
    """RFC 6750 §3: a protected resource refusing a bearer token."""

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                f'Bearer error="{self.error}", error_description="{self.description}"'
            )
        }


class InvalidToken(BearerError):
    error = "invalid_token"
    status = 401


class InsufficientScope(BearerError):
    error = "insufficient_scope"
    status = 403


class NotFound(OAuthError):
    error = "not_found"
    status = 404


def error_response(error: OAuthError) -> Response:
    """Flask error handler: an OAuthError becomes its JSON response."""
    return error.response()
