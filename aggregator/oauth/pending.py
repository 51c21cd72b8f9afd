"""Authorization requests in flight while the person logs in, consents or connects a bank.

The request is stored server-side (Redis, 30 minutes) under a random id; the browser only
carries that id in URLs such as ``/authorize/continue/<id>`` (never the raw parameters). The
record is bound to a random value in a dedicated HttpOnly cookie, which survives the session
rotation at login, so the id is useless in any other browser.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, after_this_request, request, url_for

from aggregator.crypto import constant_time_equals, new_token, token_hash
from aggregator.errors import InvalidRequest
from aggregator.oauth.authorization_request import AuthorizationRequest
from aggregator.services import Services
from aggregator.store.authorizations import PENDING_TTL, PendingAuthorization


@dataclass(frozen=True)
class Pending:
    """A request in flight: its stored record, and the request parsed once."""

    record: PendingAuthorization
    authorization: AuthorizationRequest

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def created_at(self) -> int:
        return self.record.created_at


def _cookie_name(svc: Services) -> str:
    return "__Host-authz" if svc.settings.secure_cookies else "aggregator_authz"


def _binding(svc: Services) -> str:
    """This browser's binding value (set as a cookie with this response when new)."""
    name = _cookie_name(svc)
    value = request.cookies.get(name, "")
    if len(value) < 32 or len(value) > 100:
        value = new_token()

    @after_this_request
    def _set_cookie(response: Response) -> Response:
        response.set_cookie(name, value, max_age=PENDING_TTL, path="/", httponly=True,
                            secure=svc.settings.secure_cookies, samesite="Lax")
        return response

    return value


def remember(svc: Services, authorization: AuthorizationRequest) -> Pending:
    """Store a validated request for this browser."""
    record = svc.store.pending.put(authorization.client_id, token_hash(_binding(svc)),
                                   authorization.as_dict())
    return Pending(record, authorization)


def load(svc: Services, pending_id: str) -> Pending:
    """The pending request ``pending_id`` of this browser, or an error page."""
    pending = svc.store.pending.get(pending_id)
    if pending is None:
        raise InvalidRequest("This sign-in request has expired or was already completed. "
                             "Go back to the app and start again.")
    supplied = request.cookies.get(_cookie_name(svc), "")
    if not supplied or not constant_time_equals(token_hash(supplied), pending.binding_hash):
        raise InvalidRequest("This sign-in request was started in another browser. "
                             "Go back to the app and start again here.")
    return Pending(pending, AuthorizationRequest.from_dict(pending.request))


def continue_url(pending: Pending) -> str:
    """Where the person resumes this request (a same-site path, safe as a login ``next``)."""
    return url_for("oauth_pages.resume", pending_id=pending.id)
