"""The bank's payment API: a consent, the customer's approval from an account, the payment made
once, its status settling, and the payment in the customer's own data."""

from __future__ import annotations

import time

import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.sandbox.flows import REDIRECT_URI, api_get, connect, query, token_request

VERIFIER = "v" * 43
PAYMENT = {"instructedAmount": {"amount": "1.50", "currency": "GBP"}, "creditorName": "Acme Ltd",
           "creditorAccount": {"sortCode": "123456", "accountNumber": "12345678"},
           "reference": "COFFEE-42"}


def consent(bank, payment=PAYMENT, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", (bank.client_id, bank.client_secret))
    return requests.post(f"{bank.issuer('astoria')}/payment-consents", json=payment, timeout=10,
                         **kwargs)


def approved_token(bank, consent_id: str, username: str = "nat") -> dict:
    url = requests.Request("GET", f"{bank.issuer('astoria')}/authorize", params={
        "response_type": "code", "client_id": bank.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "payments", "state": "s-1", "consent_id": consent_id,
        "code_challenge": create_s256_code_challenge(VERIFIER), "code_challenge_method": "S256",
    }).prepare().url
    code = query(bank.login_and_approve(url, username=username))["code"]
    response = token_request(bank, grant_type="authorization_code", code=code,
                             redirect_uri=REDIRECT_URI, code_verifier=VERIFIER)
    assert response.status_code == 200, response.text
    return response.json()


def make_payment(bank, access_token: str, consent_id: str) -> requests.Response:
    return requests.post(f"{bank.issuer('astoria')}/payments", json={"consent_id": consent_id},
                         headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def test_a_consent_needs_the_client_and_a_well_formed_payment(sandbox_bank):
    assert consent(sandbox_bank, auth=None).status_code == 401
    assert consent(sandbox_bank, auth=(sandbox_bank.client_id, "wrong")).json()["error"] == "invalid_client"
    long_reference = {**PAYMENT, "reference": "R" * 19}
    assert consent(sandbox_bank, long_reference).json()["error"] == "invalid_request"
    negative = {**PAYMENT, "instructedAmount": {"amount": "-1", "currency": "GBP"}}
    assert consent(sandbox_bank, negative).status_code == 400
    assert sandbox_bank.admin.stats()["payment_consents"] == 0


def test_an_approved_payment_is_made_once_settles_and_shows_in_the_customers_data(sandbox_bank):
    created = consent(sandbox_bank)
    assert created.status_code == 201 and created.json()["status"] == "awaiting_authorization"
    consent_id = created.json()["consent_id"]
    token = approved_token(sandbox_bank, consent_id)
    assert token["scope"] == "payments" and "refresh_token" not in token
    made = make_payment(sandbox_bank, token["access_token"], consent_id)
    assert made.status_code == 201 and made.json()["status"] == "pending"
    assert made.json()["amount"] == {"value": 150, "currency": "GBP"}
    again = make_payment(sandbox_bank, token["access_token"], consent_id)
    assert again.status_code == 400  # the consent is spent: no second payment
    payment_id = made.json()["id"]

    _, data_token = connect(sandbox_bank, "astoria", username="nat")
    listed = api_get(f"{data_token['endpoint']}/transactions", data_token["access_token"]).json()["data"]
    paid = [t for t in listed if t["id"] == f"pay-{payment_id}"]
    assert paid and paid[0]["amount"] == {"value": -150, "currency": "GBP"}
    assert paid[0]["status"] == "pending" and paid[0]["accountId"] == made.json()["account_id"]

    time.sleep(2.1)  # the bank settles payments after two seconds
    status = requests.get(f"{sandbox_bank.issuer('astoria')}/payments/{payment_id}", timeout=10,
                          auth=(sandbox_bank.client_id, sandbox_bank.client_secret))
    assert status.json()["status"] == "completed"
    listed = api_get(f"{data_token['endpoint']}/transactions", data_token["access_token"]).json()["data"]
    assert [t["status"] for t in listed if t["id"] == f"pay-{payment_id}"] == ["posted"]
    assert requests.get(f"{sandbox_bank.issuer('astoria')}/payments/{payment_id}",
                        timeout=10).status_code == 401


def test_a_data_token_cannot_pay_and_a_denied_consent_cannot_be_used(sandbox_bank):
    consent_id = consent(sandbox_bank).json()["consent_id"]
    _, data_token = connect(sandbox_bank, "astoria", username="nat")
    refused = make_payment(sandbox_bank, data_token["access_token"], consent_id)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    url = requests.Request("GET", f"{sandbox_bank.issuer('astoria')}/authorize", params={
        "response_type": "code", "client_id": sandbox_bank.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "payments", "state": "s-1", "consent_id": consent_id,
        "code_challenge": create_s256_code_challenge(VERIFIER), "code_challenge_method": "S256",
    }).prepare().url
    assert query(sandbox_bank.login_and_approve(url, decision="deny"))["error"] == "access_denied"
    again = requests.get(url, timeout=10)
    assert again.status_code == 400 and "already decided" in again.text
    assert sandbox_bank.admin.stats()["payments"] == 0


def test_a_card_issuer_has_no_account_to_pay_from(sandbox_bank):
    """Its metadata offers no payments scope, and it takes no payment consent."""
    metadata = requests.get(f"{sandbox_bank.issuer('monami')}/.well-known/oauth-authorization-server",
                            timeout=10).json()
    assert "payments" not in metadata["scopes_supported"]
    bank = requests.get(f"{sandbox_bank.issuer('astoria')}/.well-known/oauth-authorization-server",
                        timeout=10).json()
    assert "payments" in bank["scopes_supported"]
    created = requests.post(f"{sandbox_bank.issuer('monami')}/payment-consents", json=PAYMENT,
                            auth=(sandbox_bank.client_id, sandbox_bank.client_secret), timeout=10)
    assert created.status_code == 400 and created.json()["error"] == "invalid_request"
    assert "no account a payment can come from" in created.json()["error_description"]
    assert sandbox_bank.admin.stats()["payment_consents"] == 0
