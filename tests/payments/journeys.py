"""The steps of a payment as an app and a person take them, over HTTP."""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import REDIRECT, App, decide, pkce, response_params, walk


def payment_initiation(amount: str = "1.50", *, reference: str = "COFFEE-42",
                       sort_code: str = "123456", account_number: str = "12345678",
                       **extra: Any) -> dict[str, Any]:
    """One RFC 9396 ``payment_initiation`` detail: pay Acme Ltd."""
    return {"type": "payment_initiation",
            "instructedAmount": {"currency": "GBP", "amount": amount},
            "creditorName": "Acme Ltd",
            "creditorAccount": {"sortCode": sort_code, "accountNumber": account_number},
            "remittanceInformationUnstructured": reference, **extra}


def push(app: App, detail: dict[str, Any] | None = None, **params: str) -> requests.Response:
    """The pushed authorization request (RFC 9126) of a payment."""
    _, challenge = pkce()
    form = {"response_type": "code", "redirect_uri": REDIRECT, "state": "st-1", "scope": "openid",
            "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256",
            "authorization_details": json.dumps([detail or payment_initiation()]), **params}
    return app.post("/par", form)


def consent_page(server: LiveAS, app: App, agent: PersonAgent,
                 detail: dict[str, Any] | None = None) -> tuple[requests.Response, str]:
    """Push, then open the AS's payment consent page as the person; (page, code verifier)."""
    verifier, challenge = pkce()
    pushed = push(app, detail, code_challenge=challenge)
    assert pushed.status_code == 201, pushed.text
    page = walk(agent, f"/authorize?client_id={app.client_id}&request_uri={pushed.json()['request_uri']}")
    assert page.status_code == 200, page.text
    return page, verifier


def at_the_bank(agent: PersonAgent, page: requests.Response) -> requests.Response:
    """Allow on the consent page with the institution preselected: the redirect to the bank."""
    to_bank = decide(agent, page)
    assert to_bank.status_code == 303, to_bank.text
    return to_bank


def pay(server: LiveAS, app: App, agent: PersonAgent, bank: Any, *, decision: str = "allow",
        username: str = "nat", detail: dict[str, Any] | None = None
        ) -> tuple[dict[str, str], str]:
    """The whole payment: consent, the bank, back at the AS; (the app's answer, code verifier)."""
    page, verifier = consent_page(server, app, agent, detail)
    to_bank = at_the_bank(agent, page)
    callback = bank.login_and_approve(to_bank.headers["Location"], username=username,
                                      decision=decision)
    answer = agent.http.get(callback, allow_redirects=False)
    assert answer.headers["Location"].startswith(REDIRECT), answer.text
    return response_params(answer), verifier


def token(app: App, code: str, verifier: str) -> dict[str, Any]:
    response = app.post("/token", {"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": REDIRECT, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


def read_payment(server: LiveAS, access_token: str, payment_id: str) -> requests.Response:
    return requests.get(f"{server.url}/payments/{payment_id}", timeout=10,
                        headers={"Authorization": f"Bearer {access_token}"})


def payment_sentence(page: requests.Response) -> str:
    found = re.search(r'id="payment-sentence">([^<]+)<', page.text)
    assert found, page.text
    return found.group(1)
