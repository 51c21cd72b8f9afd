"""Each institution's payment API, in the shape of UK Open Banking's domestic payments:

1. ``POST /<slug>/payment-consents`` (client-authenticated): the payment the client wants to
   make; answers a ``consent_id`` awaiting the customer.
2. The customer authorizes it at ``/<slug>/authorize`` with ``scope=payments`` and
   ``consent_id``: sign in, see the payment, choose the account to pay from, allow.
3. The client exchanges the code at ``/<slug>/token`` (PKCE) and ``POST /<slug>/payments`` with
   that token and the ``consent_id``: the payment is made from the chosen account, once.
4. ``GET /<slug>/payments/<id>`` (client-authenticated): ``pending`` until it settles
   (:data:`.data.SETTLE_SECONDS`), then ``completed``; ``rejected`` when the account could not cover it.

Made payments show in the customer's ``/transactions`` and balances (see :mod:`.api`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from flask import Blueprint, request

from .api import bearer_token
from .context import current_bank
from .data import portfolio, settled_status
from .errors import NotFoundError, safe_description
from .institutions import Institution
from .store import Payment, PaymentConsent

bp = Blueprint("payments", __name__)

PAYMENT_SCOPE = "payments"
CONSENT_TTL = 3600
PAYMENT_TTL = 90 * 24 * 3600
#: UK Faster Payments: a payee reference of at most 18 characters
MAX_REFERENCE = 18
_AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,140}$")


@bp.post("/<institution:institution>/payment-consents")
def create_consent(institution: Institution) -> tuple[dict[str, Any], int]:
    client_id = authenticated_client()
    if not institution.makes_payments:  # its metadata lists no "payments" scope either
        raise InvalidRequestError(f"{institution.name} holds no account a payment can come from.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequestError("Send the payment as a JSON object.")
    consent = PaymentConsent(
        consent_id=secrets.token_urlsafe(18),
        institution=institution.slug,
        client_id=client_id,
        amount=_minor_units(body.get("instructedAmount")),
        currency="GBP",
        creditor_name=_text(body, "creditorName"),
        sort_code=_digits(body.get("creditorAccount"), "sortCode", 6),
        account_number=_digits(body.get("creditorAccount"), "accountNumber", 8),
        reference=_text(body, "reference", MAX_REFERENCE),
        debtor_reference=_text(body, "debtorReference", MAX_REFERENCE)
        if body.get("debtorReference") is not None else None,
        status="awaiting_authorization",
        created_at=int(time.time()),
    )
    current_bank().store.save_consent(consent, CONSENT_TTL)
    current_bank().store.count_payment_consent()
    return {"consent_id": consent.consent_id, "status": consent.status,
            "expires_in": CONSENT_TTL}, 201


@bp.post("/<institution:institution>/payments")
def make_payment(institution: Institution) -> tuple[dict[str, Any], int]:
    token = bearer_token(institution, scope=PAYMENT_SCOPE)
    body = request.get_json(silent=True)
    consent_id = body.get("consent_id") if isinstance(body, dict) else None
    if not isinstance(consent_id, str) or not consent_id:
        raise InvalidRequestError("Send {\"consent_id\": ...}.")
    store = current_bank().store
    grant = store.get_grant(token.grant_id)
    if grant is None or not hmac.compare_digest(grant.consent_id, consent_id):
        raise InvalidRequestError("This token was not issued for that payment consent.")
    # authorised -> consumed exactly once: a replayed request makes no second payment
    consent = store.move_consent(consent_id, "authorised", status="consumed")
    if consent is None or consent.user_id != token.user_id:
        raise InvalidRequestError("The payment consent is not authorised, or already used.")
    data = portfolio(institution, consent.user_id,
                     payments=store.customer_payments(institution.slug, consent.user_id))
    covered = data.balances.get(consent.account_id, 0) >= consent.amount
    payment = Payment(
        id=secrets.token_urlsafe(12), consent_id=consent_id, institution=institution.slug,
        client_id=consent.client_id, user_id=consent.user_id, account_id=consent.account_id,
        amount=consent.amount, currency=consent.currency, creditor_name=consent.creditor_name,
        reference=consent.reference, status="pending" if covered else "rejected",
        created_at=int(time.time()),
    )
    store.save_payment(payment, PAYMENT_TTL)
    return payment_json(payment), 201


@bp.get("/<institution:institution>/payments/<payment_id>")
def read_payment(institution: Institution, payment_id: str) -> dict[str, Any]:
    client_id = authenticated_client()
    payment = current_bank().store.get_payment(payment_id) if len(payment_id) <= 64 else None
    if payment is None or payment.institution != institution.slug or payment.client_id != client_id:
        raise NotFoundError("Unknown payment.")
    return payment_json(payment)


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "consent_id": payment.consent_id,
        "status": settled_status(payment),
        "account_id": payment.account_id,
        "amount": {"value": payment.amount, "currency": payment.currency},
        "creditorName": payment.creditor_name,
        "reference": payment.reference,
        "created_at": payment.created_at,
    }


def authenticated_client() -> str:
    """HTTP Basic client authentication (RFC 6749 §2.3.1) of the bank's one client."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError(description="Authenticate with HTTP Basic.", status_code=401)
    try:
        client_id, _, secret = base64.b64decode(credentials.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError(description="Malformed HTTP Basic credentials.",
                                 status_code=401) from None
    client = current_bank().server.client
    if unquote(client_id) != client.client_id or not client.check_client_secret(unquote(secret)):
        raise InvalidClientError(description="Unknown client or wrong secret.", status_code=401)
    return client.client_id


def _minor_units(amount: Any) -> int:
    if not isinstance(amount, dict) or amount.get("currency") != "GBP":
        raise InvalidRequestError("instructedAmount must be {\"amount\", \"currency\": \"GBP\"}.")
    value = amount.get("amount")
    try:
        pence = int(Decimal(value) * 100) if isinstance(value, str) and _AMOUNT.match(value) else 0
    except InvalidOperation:
        pence = 0
    if pence <= 0:
        raise InvalidRequestError("instructedAmount.amount must be positive, at most two decimals.")
    return pence


def _text(body: dict[str, Any], name: str, limit: int = 140) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not _TEXT.match(value) or len(value) > limit:
        raise InvalidRequestError(safe_description(f"'{name}' must be text of 1-{limit} characters."))
    return value


def _digits(account: Any, name: str, count: int) -> str:
    value = account.get(name) if isinstance(account, dict) else None
    if not isinstance(value, str) or not re.fullmatch(rf"[0-9]{{{count}}}", value):
        raise InvalidRequestError(f"creditorAccount.{name} must be {count} digits.")
    return value
