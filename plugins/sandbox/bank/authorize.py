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
from .data import Account, portfolio
from .institutions import Customer, Institution, normalize_username
from .oauth import PAYMENT_SCOPE, SCOPES
from .store import PaymentConsent

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
    consent, problem = _payment_consent(institution)
    if problem:
        return _error_page(institution, "invalid_request", problem)
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
        return _decide(institution, grant, consent)
    return _sign_in(institution, consent)


def _malformed_parameter() -> str | None:
    for name, syntax in PARAMETER_SYNTAX.items():
        value = request.values.get(name)  # where Authlib reads them from
        if value is not None and not syntax.fullmatch(value):
            return name
    return None


def _payment_consent(institution: Institution) -> tuple[PaymentConsent | None, str | None]:
    """The payment this request authorizes (``scope=payments`` with its ``consent_id``), or why
    the request cannot be served."""
    scopes = (request.args.get("scope") or "").split()
    consent_id = request.args.get("consent_id")
    if PAYMENT_SCOPE not in scopes:
        return None, ("'consent_id' goes with scope=payments." if consent_id else None)
    if scopes != [PAYMENT_SCOPE]:
        return None, "A payment is authorized on its own: scope=payments alone."
    consent = current_bank().store.get_consent(consent_id or "") if consent_id else None
    if (consent is None or consent.institution != institution.slug
            or consent.client_id != request.args.get("client_id")):
        return None, "Unknown or expired payment consent."
    if consent.status != "awaiting_authorization":
        return None, "This payment was already decided."
    return consent, None


def _payable_accounts(customer: Customer) -> list[Account]:
    """The customer's current and savings accounts: those a payment can come from."""
    data = portfolio(customer.institution, customer.user_id)
    return [account for account in data.accounts if account.type.startswith("cash:")]


def _sign_in(institution: Institution, consent: PaymentConsent | None) -> tuple[str, int] | str:
    username = normalize_username(request.form.get("username", ""))
    password = request.form.get("password", "").encode()
    if username is None or not hmac.compare_digest(password, SANDBOX_PASSWORD):
        return _login_page(institution, "Wrong username or password.", status=400)
    customer = Customer.sign_in(institution, username)
    session["login"] = {"request": _request_digest(), "username": customer.username}
    if consent is not None:
        return render_template(
            "sandbox_bank/payment.html", institution=institution, customer=customer,
            client_id=request.args.get("client_id"), consent=consent,
            amount=f"£{consent.amount // 100}.{consent.amount % 100:02d}",
            accounts=_payable_accounts(customer), csrf_token=_csrf_token(),
        )
    scopes = current_bank().server.client.get_allowed_scope(request.args.get("scope")).split()
    return render_template(
        "sandbox_bank/consent.html",
        institution=institution,
        customer=customer,
        client_id=request.args.get("client_id"),
        scopes=[(s, SCOPE_DESCRIPTIONS[s]) for s in SCOPES if s in scopes],
        csrf_token=_csrf_token(),
    )


def _decide(institution: Institution, grant: object,
            consent: PaymentConsent | None) -> Response | tuple[str, int]:
    login = session.pop("login", None)
    if not login or not hmac.compare_digest(login.get("request", ""), _request_digest()):
        return _error_page(institution, "login_required", "Sign in before approving access.")
    decision = request.form["decision"]
    if decision not in ("allow", "deny"):
        return _error_page(institution, "invalid_request", "Choose Allow or Deny.")
    customer = Customer.sign_in(institution, login["username"])
    if consent is not None:
        problem = _decide_payment(customer, consent, decision)
        if problem:
            return _error_page(institution, "invalid_request", problem)
    # A denial goes back to the client as error=access_denied (RFC 6749 §4.1.2.1).
    return current_bank().server.create_authorization_response(
        grant=grant, grant_user=customer if decision == "allow" else None
    )


def _decide_payment(customer: Customer, consent: PaymentConsent, decision: str) -> str | None:
    """Bind the consent to the customer and the account they pay from, or mark it rejected."""
    store = current_bank().store
    if decision == "deny":
        store.move_consent(consent.consent_id, "awaiting_authorization", status="rejected")
        return None
    account_id = request.form.get("account", "")
    if account_id not in {account.id for account in _payable_accounts(customer)}:
        return "Choose the account to pay from."
    moved = store.move_consent(consent.consent_id, "awaiting_authorization", status="authorised",
                               user_id=customer.user_id, username=customer.username,
                               account_id=account_id)
    return None if moved is not None else "This payment was already decided."


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
