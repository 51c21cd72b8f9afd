"""Payments through Moneyhub (seed 001 "Payments"): the rules, the payees, the claim, the status.

Moneyhub pays only into pre-registered accounts ("payees"), so a creditor account becomes a
payee once (``POST /payees``, client credentials ``payee:create``) and its id is remembered in
the plugin cache; when the cache lost it, ``GET /payees`` (``payee:read``) finds it again before
a second one is created. The payment itself is the ``mh:payment`` claim of a signed request
object with ``scope=openid payment id:<bank>``; after the code exchange the verified id_token's
``mh:payment`` is the payment id, whose state ``GET /payments/{id}`` (``payment:read``) tells.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aggregator.upstream.contract import (
    InvalidPaymentRequest,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    PluginCache,
    UpstreamError,
    UpstreamUnavailable,
)
from plugins.moneyhub.identity import MoneyhubIdentity

log = logging.getLogger("plugins.moneyhub")

#: seed 001 "Payments Claim": payeeRef and payerRef hold at most 18 characters
MAX_REFERENCE = 18
#: Moneyhub initiates UK Faster Payments: pounds only, in pence
CURRENCY = "GBP"
AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
SORT_CODE = re.compile(r"[0-9]{6}")
ACCOUNT_NUMBER = re.compile(r"[0-9]{8}")
#: payees listed per ``GET /payees`` page, and the most pages read before creating one
PAGE = 100
MAX_PAGES = 20

#: a payment's ``status`` at Moneyhub (its own words and Open Banking UK's codes, compared in
#: lower case) as apps see it; anything else is still ``pending``
STATUSES: dict[str, PaymentStatus] = {
    "completed": "completed",
    "acceptedsettlementcompleted": "completed",
    "acceptedcreditsettlementcompleted": "completed",
    "rejected": "rejected",
    "cancelled": "rejected",
    "failed": "failed",
    "error": "failed",
}
REFUSED = {
    "rejected": "The bank rejected the payment.",
    "failed": "The payment failed at Moneyhub or the bank.",
}


def check(payment: PaymentRequest) -> None:
    """What Moneyhub would refuse, refused here before anything is sent."""
    if payment.currency != CURRENCY:
        raise InvalidPaymentRequest(f"Moneyhub pays in {CURRENCY} only.")
    if not AMOUNT.fullmatch(payment.amount) or payment.minor_units <= 0:
        raise InvalidPaymentRequest("The amount must be positive, with at most two decimals.")
    if not payment.creditor_name.strip():
        raise InvalidPaymentRequest("The payee needs a name.")
    if not SORT_CODE.fullmatch(payment.sort_code):
        raise InvalidPaymentRequest("The payee's sort code must be 6 digits.")
    if not ACCOUNT_NUMBER.fullmatch(payment.account_number):
        raise InvalidPaymentRequest("The payee's account number must be 8 digits.")
    if not 0 < len(payment.reference) <= MAX_REFERENCE:
        raise InvalidPaymentRequest(
            f"Moneyhub needs a payee reference of 1 to {MAX_REFERENCE} characters."
        )
    if payment.debtor_reference and len(payment.debtor_reference) > MAX_REFERENCE:
        raise InvalidPaymentRequest(
            f"Moneyhub takes a payer reference of at most {MAX_REFERENCE} characters."
        )


def claims(user_id: str, payee_id: str, payment: PaymentRequest) -> dict[str, Any]:
    """The ``claims`` parameter of a payment (seed 001's example, plus the registration's own
    Moneyhub user as ``sub``, so the payment is that profile's and its id_token is checked
    against it). Without a payer reference the payee reference is on both statements."""
    return {"id_token": {
        "sub": {"essential": True, "value": user_id},
        "mh:con_id": {"essential": True},
        "mh:payment": {"essential": True, "value": {
            "payeeId": payee_id,
            "amount": payment.minor_units,
            "payeeRef": payment.reference,
            "payerRef": payment.debtor_reference or payment.reference,
        }},
    }}


def result(payment_id: str, payment: Mapping[str, Any]) -> PaymentResult:
    """A payment from ``GET /payments/{id}`` as the contract's result."""
    raw = str(payment.get("status") or "").lower()
    status = STATUSES.get(raw, "pending")
    if raw not in STATUSES and raw != "pending":
        log.info("moneyhub payment status read as pending", extra={"status": raw[:40]})
    return PaymentResult(payment_id, status, REFUSED.get(status))


class MoneyhubPayments:
    """Payees (created once per creditor account, remembered) and payments at Moneyhub."""

    def __init__(self, identity: MoneyhubIdentity, cache: PluginCache) -> None:
        self.identity = identity
        self.cache = cache

    def payee_id(self, payment: PaymentRequest, *, recheck: bool = False) -> tuple[str, bool]:
        """The payee for the payment's creditor account: remembered (unless ``recheck``), else
        found, else created; and whether it was remembered."""
        creditor = {"sortCode": payment.sort_code, "accountNumber": payment.account_number,
                    "name": payment.creditor_name}
        key = "payee:" + hashlib.sha256(
            json.dumps(creditor, sort_keys=True).encode()
        ).hexdigest()
        known = None if recheck else self.cache.get(key)
        if isinstance(known, str) and known:
            return known, True
        # two first payments to one account at once may both create it: harmless duplicates
        payee_id = self._find(creditor) or self._create(creditor)
        self.cache.set(key, payee_id)
        return payee_id, False

    def _find(self, creditor: dict[str, str]) -> str | None:
        """An active payee with the same account and name (``GET /payees``, paged)."""
        for page in range(MAX_PAGES):
            response = self.identity.users_api(
                "GET", "/payees", "payee:read", params={"limit": PAGE, "offset": page * PAGE}
            )
            if response.status_code != 200:
                raise self.identity.refused(response, "list the payees")
            listed = _data(self.identity.json(response, "payee list"))
            if not isinstance(listed, list):
                raise UpstreamUnavailable("Moneyhub sent an unreadable payee list.")
            for payee in listed:
                if (isinstance(payee, dict) and isinstance(payee.get("id"), str)
                        and payee.get("active", True) is not False
                        and all(payee.get(k) == v for k, v in creditor.items())):
                    return payee["id"]
            if len(listed) < PAGE:
                return None
        return None

    def _create(self, creditor: dict[str, str]) -> str:
        """``POST /payees`` with ``payee:create``."""
        response = self.identity.users_api("POST", "/payees", "payee:create", json=creditor)
        if response.status_code not in (200, 201):
            raise self.identity.refused(response, "register the payee")
        payee = _data(self.identity.json(response, "payee"))
        if not isinstance(payee, dict) or not isinstance(payee.get("id"), str):
            raise UpstreamUnavailable("Moneyhub registered the payee but sent no id.")
        log.info("moneyhub payee created")
        return payee["id"]

    def status(self, payment_id: str) -> PaymentResult:
        """``GET /payments/{id}`` with ``payment:read``."""
        response = self.identity.users_api(
            "GET", f"/payments/{quote(payment_id, safe='')}", "payment:read"
        )
        if response.status_code == 404:
            raise UpstreamError("Moneyhub knows no such payment.")
        if response.status_code != 200:
            raise self.identity.refused(response, "tell the payment's status")
        payment = _data(self.identity.json(response, "payment"))
        if not isinstance(payment, dict):
            raise UpstreamUnavailable("Moneyhub sent an unreadable payment.")
        return result(payment_id, payment)


def _data(body: Any) -> Any:
    """Seed 001 wraps answers in ``{"data": ..., "meta": ...}``."""
    return body.get("data") if isinstance(body, dict) and "data" in body else body
