"""Each institution's authorization endpoint: sign in, then approve or deny (RFC 6749 §4.1.1).

The authorization request stays in the URL's query string throughout: the login and approval
forms post back to the same URL, and Authlib re-validates the request at every step. Sign-in
is bound to that one request (a digest of it is kept in the signed session cookie), so an
approval can only follow a sign-in for the very same request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Response, render_template, request, session

from .context import current_bank
from .institutions import Customer, Institution, normalize_username
from .oauth import SCOPES

bp = Blueprint("authorize", __name__)

SANDBOX_PASSWORD = b"sandbox"
# RFC 6749 Appendix A syntax of the parameters that end up quoted in error descriptions, which
# RFC 6749 §4.1.2.1 restricts to printable ASCII without '"' or '\\'.
_NQCHARS = r"[\x21\x23-\x5b\x5d-\x7e]+"
PARAMETER_SYNTAX = {
    "response_type": re.compile(r"[A-Za-z0-9_]+( [A-Za-z0-9_]+)*"),
    "scope": re.compile(rf"{_NQCHARS}( {_NQCHARS})*"),
    "redirect_uri": re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+"),  # RFC 3986
}
SCOPE_DESCRIPTIONS = {
    "accounts": "See your accounts and their details",
    "balances": "See your account balances",
    "transactions": "See your transactions from the last 12 months",
}


@bp.route("/<institution:institution>/authorize", methods=["GET", "POST"])
def authorize(institution: Institution) -> Response | tuple[str, int] | str:
    server = current_bank().server
    malformed = _malformed_parameter()
    if malformed:
        return _error_page(institution, "invalid_request", f"Malformed '{malformed}'.")
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        if error.redirect_uri:  # the client and redirect URI are valid: tell the client
            return server.authorization_error_response(error)
        # RFC 6749 §4.1.2.1: never redirect to an unverified URI; tell the person instead.
        return _error_page(institution, error.error, error.get_error_description())
    if request.method == "GET":
        session.pop("login", None)
        return _login_page(institution)
    if not _csrf_ok():
        return _error_page(
            institution, "invalid_request",
            "This form has expired or did not come from this page. Go back to the application "
            "and start again.",
        )
    if "decision" in request.form:
        return _decide(institution, grant)
    return _sign_in(institution)


def _malformed_parameter() -> str | None:
    for name, syntax in PARAMETER_SYNTAX.items():
        value = request.values.get(name)  # where Authlib reads them from
        if value is not None and not syntax.fullmatch(value):
            return name
    return None


def _sign_in(institution: Institution) -> tuple[str, int] | str:
    username = normalize_username(request.form.get("username", ""))
    password = request.form.get("password", "").encode()
    if username is None or not hmac.compare_digest(password, SANDBOX_PASSWORD):
        return _login_page(institution, "Wrong username or password.", status=400)
    customer = Customer.sign_in(institution, username)
    session["login"] = {"request": _request_digest(), "username": customer.username}
    scopes = current_bank().server.client.get_allowed_scope(request.args.get("scope")).split()
    return render_template(
        "sandbox_bank/consent.html",
        institution=institution,
        customer=customer,
        client_id=request.args.get("client_id"),
        scopes=[(s, SCOPE_DESCRIPTIONS[s]) for s in SCOPES if s in scopes],
        csrf_token=_csrf_token(),
    )


def _decide(institution: Institution, grant: object) -> Response | tuple[str, int]:
    login = session.pop("login", None)
    if not login or not hmac.compare_digest(login.get("request", ""), _request_digest()):
        return _error_page(institution, "login_required", "Sign in before approving access.")
    decision = request.form["decision"]
    if decision not in ("allow", "deny"):
        return _error_page(institution, "invalid_request", "Choose Allow or Deny.")
    customer = Customer.sign_in(institution, login["username"])
    # A denial goes back to the client as error=access_denied (RFC 6749 §4.1.2.1).
    return current_bank().server.create_authorization_response(
        grant=grant, grant_user=customer if decision == "allow" else None
    )


def _login_page(institution: Institution, error: str | None = None,
                status: int = 200) -> tuple[str, int]:
    page = render_template(
        "sandbox_bank/login.html", institution=institution, error=error,
        csrf_token=_csrf_token(), username=request.form.get("username", ""),
    )
    return page, status


def _error_page(institution: Institution, error: str, description: str) -> tuple[str, int]:
    page = render_template(
        "sandbox_bank/error.html", institution=institution, error=error, description=description
    )
    return page, 400


def _request_digest() -> str:
    """Identifies the authorization request being served (institution and query string)."""
    items = sorted(request.args.items(multi=True))
    return hashlib.sha256(repr((request.path, items)).encode()).hexdigest()


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    submitted = request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(submitted.encode(), expected.encode())
