"""Typed protocol errors and the handlers that render them.

Every error a client can cause is one of these classes, carrying its RFC error code and HTTP
status. API endpoints answer with the RFC 6749 §5.2 JSON shape; the person's pages render the
same error as a readable page. Unexpected exceptions become ``server_error`` without details,
except store faults (Redis down, read-only, ``MISCONF``): those are ``temporarily_unavailable``,
a 503 with ``Retry-After``, whatever phase of the request they happen in.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException, InternalServerError

from aggregator.store.faults import store_fault

log = logging.getLogger("aggregator.errors")


class ProtocolError(Exception):
    """Base: ``error`` is the RFC code, ``status_code`` the HTTP status."""

    error = "invalid_request"
    status_code = 400
    headers: dict[str, str] = {}

    def __init__(self, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The RFC 6749 §5.2 JSON body."""
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        body.update(self.extra)
        return body

    def redirect_params(self) -> dict[str, str]:
        """``error`` and ``error_description`` for an authorization error response
        (RFC 6749 §4.1.2.1)."""
        params = {"error": self.error}
        if self.description:
            params["error_description"] = self.description
        return params


class InvalidRequest(ProtocolError):
    error = "invalid_request"


class InvalidClient(ProtocolError):
    error = "invalid_client"
    status_code = 401
    headers = {"WWW-Authenticate": 'Basic realm="aggregator"'}


class InvalidGrant(ProtocolError):
    error = "invalid_grant"


class UnauthorizedClient(ProtocolError):
    error = "unauthorized_client"


class InvalidScope(ProtocolError):
    error = "invalid_scope"


class AccessDenied(ProtocolError):
    error = "access_denied"
    status_code = 403


class InvalidToken(ProtocolError):
    error = "invalid_token"
    status_code = 401


class InvalidClientMetadata(ProtocolError):
    error = "invalid_client_metadata"


class InvalidRedirectUri(ProtocolError):
    error = "invalid_redirect_uri"


class NotFound(ProtocolError):
    error = "not_found"
    status_code = 404


class MethodNotAllowed(ProtocolError):
    error = "method_not_allowed"
    status_code = 405

    def __init__(self, description: str | None = None, *, allowed: list[str] | None = None) -> None:
        super().__init__(description)
        if allowed:  # RFC 9110 §15.5.6: a 405 names the methods that are allowed
            self.headers = {"Allow": ", ".join(allowed)}


class RequestTooLarge(ProtocolError):
    error = "invalid_request"
    status_code = 413


class UnsupportedMediaType(ProtocolError):
    error = "invalid_request"
    status_code = 415


class TooManyRequests(ProtocolError):
    error = "slow_down"
    status_code = 429


#: seconds a client should wait before retrying a 503 (RFC 9110 §10.2.3 ``Retry-After``)
RETRY_AFTER = 5


class TemporarilyUnavailable(ProtocolError):
    """RFC 6749 §4.1.2.1 ``temporarily_unavailable``: a 503 (RFC 9110 §15.6.4) that tells the
    client when to retry (RFC 9110 §10.2.3)."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str | None = None, *, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(description)
        self.headers = {"Retry-After": str(retry_after)}


STORE_UNAVAILABLE = "The service is briefly unavailable. Please try again in a moment."


class UpstreamFailed(ProtocolError):
    """An institution answered in a way that retrying will not mend (a bad gateway)."""

    error = "upstream_error"
    status_code = 502


class ServerError(ProtocolError):
    """Anything unexpected: no details leave the server (RFC 6749 §4.1.2.1 ``server_error``)."""

    error = "server_error"
    status_code = 500

    def __init__(self, description: str = "The server could not complete the request.") -> None:
        super().__init__(description)


class HTTPRequestError(ProtocolError):
    """Another 4xx that Werkzeug raised itself (a bad header, a URI too long, ...)."""

    error = "invalid_request"

    def __init__(self, status_code: int, description: str | None = None) -> None:
        super().__init__(description)
        self.status_code = status_code


class ErrorSchema(Schema):
    """The RFC 6749 §5.2 body that :meth:`ProtocolError.body` builds (documented in OpenAPI)."""

    error = fields.String(required=True)
    error_description = fields.String()


# ------------------------------------------------------------------ the provider's errors


class UnsupportedResponseType(ProtocolError):
    """RFC 6749 §4.1.2.1."""

    error = "unsupported_response_type"


class UnsupportedGrantType(ProtocolError):
    """RFC 6749 §5.2."""

    error = "unsupported_grant_type"


class InvalidAuthorizationDetails(ProtocolError):
    """RFC 9396 §5."""

    error = "invalid_authorization_details"


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


class _DPoPError(ProtocolError):
    """RFC 9449 errors: 400 at the token and PAR endpoints (§5, §7); 401 with a ``DPoP``
    challenge at a resource endpoint (§7.1). ``nonce`` goes out as ``DPoP-Nonce`` (§8)."""

    def __init__(self, description: str | None = None, *, at_resource: bool = False,
                 nonce: str | None = None) -> None:
        super().__init__(description)
        headers: dict[str, str] = {}
        if at_resource:
            self.status_code = 401
            headers["WWW-Authenticate"] = dpop_challenge(self.error, description)
        if nonce is not None:
            headers["DPoP-Nonce"] = nonce
        self.headers = headers


class InvalidDPoPProof(_DPoPError):
    """RFC 9449 §4.3: the ``DPoP`` proof is missing where required, malformed or invalid."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(_DPoPError):
    """RFC 9449 §8: send the proof again with the server's ``DPoP-Nonce``."""

    error = "use_dpop_nonce"


class InvalidDPoPToken(_DPoPError):
    """RFC 9449 §7.1: a DPoP-bound token sent without its proof (or as Bearer): ``invalid_token``."""

    error = "invalid_token"

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, at_resource=True)


def dpop_challenge(error: str, description: str | None = None) -> str:
    """The RFC 9449 §7.1 ``WWW-Authenticate: DPoP`` challenge."""
    challenge = f'DPoP error="{error}"'
    if description:
        challenge += ', error_description="' + description.replace('"', "'") + '"'
    return challenge


_HTTP_ERRORS: dict[int, type[ProtocolError]] = {
    400: InvalidRequest,
    404: NotFound,
    413: RequestTooLarge,
    415: UnsupportedMediaType,
    429: TooManyRequests,
}

_HTTP_DESCRIPTIONS = {
    400: "The request is malformed.",
    404: "There is nothing at this address.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    415: "Unsupported content type.",
}


def wants_html() -> bool:
    """Pages (routes of page blueprints) and browsers get HTML; API clients, and whoever posts
    JSON, get JSON.

    Decided by the route, not by a hook: an error raised before any blueprint hook has run (the
    session, CSRF) still renders as its page."""
    blueprints = current_app.blueprints
    if not request.is_json and any(getattr(blueprints.get(name), "html_errors", False)
                                   for name in request.blueprints):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > request.accept_mimetypes[
        "application/json"
    ]


def json_error(exc: ProtocolError):
    """The RFC 6749 §5.2 JSON error response."""
    response = jsonify(exc.body())
    response.status_code = exc.status_code
    response.headers.update(exc.headers)
    return response


def unavailable(exc: BaseException) -> TemporarilyUnavailable | None:
    """The 503 for a store fault, logged as one warning line (its kind and class: a Redis
    message may quote the command's values), or None when ``exc`` is not a store fault."""
    fault = store_fault(exc)
    if fault is None:
        return None
    log.warning("store unavailable: %s", fault.value, extra={"error_type": type(exc).__name__})
    from aggregator.services import services  # the services import this module

    services().metrics.store_failed(exc)
    return TemporarilyUnavailable(STORE_UNAVAILABLE)


def typed_unexpected(exc: BaseException) -> ProtocolError:
    """An exception no handler expected: a store fault is a 503, anything else a logged 500."""
    error = unavailable(exc)
    if error is None:
        log.exception("unhandled error", extra={"error_type": type(exc).__name__})
        error = ServerError()
    return error


def typed_http_error(exc: HTTPException) -> ProtocolError:
    """Werkzeug's own 4xx (no route, wrong method, a body too large, an unparsable form) as
    the typed error it amounts to; a 405 keeps its ``Allow`` header (RFC 9110 §15.5.6).

    Flask hands the failures after the view (saving the session, ``after_request``) over as an
    InternalServerError wrapping them; Flask has logged them already."""
    if isinstance(exc, InternalServerError):
        original = exc.original_exception
        return (original is not None and unavailable(original)) or ServerError()
    code = exc.code or 400
    description = _HTTP_DESCRIPTIONS.get(code, exc.description)
    if code == 405:
        return MethodNotAllowed(description, allowed=getattr(exc, "valid_methods", None))
    if code in _HTTP_ERRORS:
        return _HTTP_ERRORS[code](description)
    return HTTPRequestError(code, description)


def json_http_error(exc: HTTPException):
    """Werkzeug's own 4xx as RFC JSON too."""
    if exc.code is not None and exc.code < 400:
        return exc
    return json_error(typed_http_error(exc))


def json_unexpected(exc: Exception):
    """Any other exception as RFC JSON: a store fault's 503 or a bare ``server_error``."""
    return json_error(typed_unexpected(exc))


def api_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of client-facing endpoints: every error is RFC JSON, whatever Accept says."""
    bp = Blueprint(name, import_name)
    bp.register_error_handler(ProtocolError, json_error)
    bp.register_error_handler(HTTPException, json_http_error)
    bp.register_error_handler(Exception, json_unexpected)
    return bp


def render_error(exc: ProtocolError):
    if wants_html():
        message = exc.description or _HTTP_DESCRIPTIONS.get(exc.status_code, exc.error)
        html = render_template("error.html", error=exc.error, message=message,
                               status=exc.status_code)
        return html, exc.status_code, exc.headers
    return json_error(exc)


class Application(Flask):
    """Flask, except that a store fault reaching Flask's last resort (raised while saving the
    session or in ``after_request``) is not logged as a traceback: the 500 handler turns it
    into the 503 and logs its one warning line."""

    def log_exception(self, exc_info) -> None:  # type: ignore[no-untyped-def]
        if store_fault(exc_info[1]) is None:
            super().log_exception(exc_info)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ProtocolError)
    def _protocol(exc: ProtocolError):
        return render_error(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code is not None and exc.code < 400:
            return exc
        return render_error(typed_http_error(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        return render_error(typed_unexpected(exc))
