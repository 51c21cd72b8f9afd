"""Payments through the sandbox bank (docs/sandbox-bank.md, "Payments"): a payment consent
created with our client credentials, the customer's approval at the institution's authorization
endpoint (``scope=payments`` + ``consent_id``, PKCE), the code exchanged, then the payment made
with that token. The customer must sign in as the customer the registration is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aggregator.upstream.contract import (
    InvalidPaymentRequest,
    LinkDenied,
    LinkInvalid,
    LinkStart,
    PaymentDenied,
    PaymentRequest,
    PaymentResult,
    PaymentsCapability,
    PaymentStatus,
    Registration,
    UpstreamUnavailable,
)
from aggregator.upstream.oidc_client import OAuthRefusal, OIDCClient, pkce
from plugins.oidc.plugin import OIDCPlugin

#: UK Faster Payments references, as the bank enforces them
MAX_REFERENCE = 18
_STATUSES: dict[str, PaymentStatus] = {"pending": "pending", "completed": "completed",
                                       "rejected": "rejected"}


class SandboxPayments(OIDCPlugin, PaymentsCapability):
    """The OIDC plugin plus the sandbox bank's payment API: what
    :class:`plugins.sandbox.plugin.SandboxPlugin` builds on."""

    def check_payment(self, payment: PaymentRequest,
                      registration: Registration | None = None) -> None:
        if payment.currency != "GBP":
            raise InvalidPaymentRequest("The sandbox bank pays in GBP only.")
        for name, value in (("reference", payment.reference),
                            ("statement reference", payment.debtor_reference or "")):
            if len(value) > MAX_REFERENCE:
                raise InvalidPaymentRequest(f"its {name} is longer than {MAX_REFERENCE} characters")
        if registration is not None:
            # an institution's metadata (cached) lists "payments" only where accounts can pay
            scopes = self.upstream(registration.metadata["issuer"]).metadata().get(
                "scopes_supported", [])
            if "payments" not in scopes:
                raise InvalidPaymentRequest("it holds no account a payment can come from")

    def begin_payment(self, registration: Registration, payment: PaymentRequest, *,
                      state: str) -> LinkStart:
        self.check_payment(payment, registration)
        issuer = registration.metadata["issuer"]
        upstream = self.upstream(issuer)
        consent = self._bank_json(upstream, "POST", f"{issuer}/payment-consents", 201, json={
            "instructedAmount": {"amount": payment.amount, "currency": payment.currency},
            "creditorName": payment.creditor_name,
            "creditorAccount": {"sortCode": payment.sort_code,
                                "accountNumber": payment.account_number},
            "reference": payment.reference,
            **({"debtorReference": payment.debtor_reference} if payment.debtor_reference else {}),
        }, auth=self._basic())
        verifier, challenge = pkce()
        try:
            url = upstream.authorization_url({
                "response_type": "code", "redirect_uri": self.context.callback_url,
                "scope": "payments", "state": state, "consent_id": consent["consent_id"],
                **challenge,
            })
        except OAuthRefusal as refusal:
            raise InvalidPaymentRequest(refusal.explain("start the payment")) from None
        return LinkStart(url, {"issuer": issuer, "code_verifier": verifier,
                               "consent_id": consent["consent_id"]})

    def complete_payment(self, registration: Registration, params: Mapping[str, str],
                         remember: Mapping[str, Any]) -> PaymentResult:
        issuer = remember["issuer"]
        if issuer != registration.metadata.get("issuer"):
            raise LinkInvalid("This payment was started at another institution.")
        upstream = self.upstream(issuer)
        try:
            code = upstream.authorization_code(params)
        except LinkDenied as denied:
            raise PaymentDenied(denied.description) from None
        try:
            token = upstream.exchange_code(code, self.context.callback_url, remember["code_verifier"])
        except OAuthRefusal as refusal:
            raise LinkInvalid(refusal.explain("accept the payment's code")) from None
        # the bank names the customer's API: the one of this registration, or someone else
        if token.get("endpoint") != registration.endpoint:
            raise LinkInvalid("You signed in at the bank as a different customer than the one "
                              "this connection is for; nothing was paid.")
        made = self._bank_json(upstream, "POST", f"{issuer}/payments", 201,
                               json={"consent_id": remember["consent_id"]},
                               headers={"Authorization": f"Bearer {token['access_token']}"})
        return _result(made)

    def payment_status(self, registration: Registration, payment_id: str) -> PaymentResult:
        issuer = registration.metadata["issuer"]
        upstream = self.upstream(issuer)
        return _result(self._bank_json(upstream, "GET", f"{issuer}/payments/{quote(payment_id, safe='')}",
                                       200, auth=self._basic()))

    def _basic(self) -> tuple[str, str]:
        # RFC 6749 §2.3.1: form-urlencoded before the Basic encoding
        return quote(self.credentials.client_id, safe=""), quote(self.credentials.client_secret or "",
                                                                 safe="")

    @staticmethod
    def _bank_json(upstream: OIDCClient, method: str, url: str, expected: int,
                   **kwargs: Any) -> dict[str, Any]:
        response = upstream.send(method, url, **kwargs)
        body = upstream.json(response, "payment response")
        if response.status_code != expected or not isinstance(body, dict):
            detail = body.get("error_description") if isinstance(body, dict) else None
            if 400 <= response.status_code < 500:
                raise InvalidPaymentRequest(
                    f"The bank refused the payment ({detail or response.status_code}).")
            raise UpstreamUnavailable("The bank answered the payment request unexpectedly.")
        return body


def _result(body: Mapping[str, Any]) -> PaymentResult:
    payment_id = body.get("id")
    if not isinstance(payment_id, str) or not payment_id:
        raise UpstreamUnavailable("The bank's payment answer has no id.")
    status = _STATUSES.get(str(body.get("status")), "failed")
    error = "The account could not cover the payment." if status == "rejected" else None
    return PaymentResult(payment_id, status, error)
