"""Protocol errors of the sandbox bank, each carrying its RFC error code and HTTP status.

OAuth endpoint errors come from Authlib (:mod:`authlib.oauth2.rfc6749.errors`); these add the
resource server's (RFC 6750 §3) and the bank's own. Every one renders as OAuth-style JSON.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException


class BankError(OAuth2Error):
    """A bank error that is not an RFC 6749 one (unknown resources, injected outages)."""


class NotFoundError(BankError):
    error = "not_found"
    status_code = 404


class TemporarilyUnavailableError(BankError):
    """The outage that the ``failure_rate`` fault injects (RFC 6749 §4.1.2.1 error code)."""

    error = "temporarily_unavailable"
    description = "The institution is temporarily unavailable, try again later."
    status_code = 503

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", "1")]


class ForbiddenCustomerError(BankError):
    """A valid token used on another customer's data at the same institution."""

    error = "access_denied"
    description = "The access token was not issued for this customer."
    status_code = 403


class BearerError(OAuth2Error):
    """A protected-resource error with its ``WWW-Authenticate`` challenge (RFC 6750 §3)."""

    def __init__(self, description: str | None = None, *, realm: str, scope: str | None = None):
        super().__init__(description)
        self.realm = realm
        self.scope = scope

    def challenge(self) -> str:
        params = [f'realm="{self.realm}"']
        if self.error:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{self.get_error_description()}"')
        if self.scope:
            params.append(f'scope="{self.scope}"')
        return "Bearer " + ", ".join(params)

    def get_headers(self) -> list[tuple[str, str]]:
        # RFC 6750 §3: the resource server MUST include WWW-Authenticate.
        return [*super().get_headers(), ("WWW-Authenticate", self.challenge())]


class MissingTokenError(BearerError):
    """No credentials at all: RFC 6750 §3.1 says the challenge SHOULD NOT carry an error code."""

    error = "invalid_request"
    description = "A Bearer access token is required."
    status_code = 401

    def challenge(self) -> str:
        return f'Bearer realm="{self.realm}"'


class InvalidRequestError(BearerError):
    error = "invalid_request"
    status_code = 400


class InvalidTokenError(BearerError):
    error = "invalid_token"
    description = "The access token is expired, revoked, malformed or not issued here."
    status_code = 401


class InsufficientScopeError(BearerError):
    error = "insufficient_scope"
    description = "The access token does not carry the scope this resource needs."
    status_code = 403


def safe_description(text: str) -> str:
    """``text`` fit for ``error_description``: RFC 6749 §5.2 allows printable ASCII but '"'
    and '\\' (Authlib refuses anything else), so echoed input is defused first."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


def json_error(error: OAuth2Error) -> Response:
    """The RFC 6749 §5.2 style JSON body for any OAuth error, with its headers."""
    status, body, headers = error()
    return Response(json.dumps(body), status=status, headers=headers)


def _http_error(error: HTTPException) -> Response:
    # Routing and parsing errors (404, 405, 413, malformed bodies) answer in the same shape.
    code = error.code or 500
    names = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    name = names.get(code, "invalid_request" if code < 500 else "server_error")
    body = {"error": name, "error_description": error.description}
    response = Response(json.dumps(body), status=code, mimetype="application/json")
    allowed = getattr(error, "valid_methods", None)
    if code == 405 and allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(OAuth2Error, json_error)
    app.register_error_handler(HTTPException, _http_error)
