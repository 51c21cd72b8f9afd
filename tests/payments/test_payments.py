"""An app asks once to be paid, Nat picks Bank of Astoria, approves at the bank, and the app
follows the payment: over HTTP, against the real sandbox bank."""

from __future__ import annotations

import json
import time

import pytest
import requests

from aggregator.accounts.lifecycle import delete_person
from aggregator.store import key_names
from tests.introspection.test_story import connect
from tests.oauth.apps import (
    DATA,
    REDIRECT,
    assert_error_redirect,
    authorization_url,
    decide,
    make_app,
    new_key,
    pkce,
    response_params,
    walk,
)
from tests.oauth.fapi_client import DPoPKey
from tests.payments.journeys import (
    consent_page,
    pay,
    payment_initiation,
    payment_sentence,
    push,
    read_payment,
    token,
)


def settled(server, access_token: str, payment_id: str, timeout: float = 15) -> dict:
    """The payment as the app reads it, once it is no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        body = read_payment(server, access_token, payment_id).json()
        if body["status"] != "pending" or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_nat_pays_the_shop_from_astoria_and_the_shop_sees_it_complete(server, nat, shop, sandbox_bank):
    page, _ = consent_page(server, shop, nat)
    assert payment_sentence(page) == ("Pay £1.50 to Acme Ltd (sort code 12-34-56, account 12345678), "
                                      "reference COFFEE-42.")
    assert 'type="radio" name="registration"' in page.text and "Bank of Astoria" in page.text

    answer, verifier = pay(server, shop, nat, sandbox_bank)
    assert answer["state"] == "st-1" and answer["iss"] == server.url
    tokens = token(shop, answer["code"], verifier)
    assert set(tokens["scope"].split()) == {"openid", "payments"}
    [detail] = tokens["authorization_details"]
    assert detail["type"] == "payment_initiation" and detail["status"] == "pending"
    assert detail["instructedAmount"] == {"currency": "GBP", "amount": "1.50"}

    first = read_payment(server, tokens["access_token"], detail["payment_id"])
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    done = settled(server, tokens["access_token"], detail["payment_id"])
    assert done["status"] == "completed"
    assert done == {"id": detail["payment_id"], "status": "completed",
                    "instructedAmount": {"currency": "GBP", "amount": "1.50"},
                    "creditorName": "Acme Ltd", "institution": "Bank of Astoria",
                    "created_at": done["created_at"], "updated_at": done["updated_at"]}
    assert done["updated_at"] >= done["created_at"]
    # the bank made exactly one payment, and Nat's dashboard and activity say so
    assert sandbox_bank.admin.stats()["payments"] == 1
    dashboard = nat.http.get(nat.url("/")).text
    assert "Payments you made to apps" in dashboard and "Acme Coffee" in dashboard
    assert "You paid Acme Coffee from Bank of Astoria (1.50 GBP to Acme Ltd" in dashboard


@pytest.mark.parametrize("detail, why", [
    (payment_initiation("-1.50"), "positive"),
    (payment_initiation("0.00"), "positive"),
    (payment_initiation("1.505"), "two decimals"),
    (payment_initiation("1e3"), "decimal"),
    (payment_initiation(sort_code="12345"), "sortCode"),
    (payment_initiation(sort_code="12-34-56"), "sortCode"),
    (payment_initiation(account_number="1234567X"), "accountNumber"),
    (payment_initiation(reference="R" * 141), "longer than 140"),
    (payment_initiation(reference=""), "remittanceInformationUnstructured"),
    (payment_initiation(unexpected="x"), "does not take"),
    ({**payment_initiation(), "instructedAmount": {"currency": "GBP", "amount": 1.5}}, "decimal string"),
], ids=["negative", "zero", "three-decimals", "exponent", "short-sort-code", "dashed-sort-code",
        "letter-in-account", "long-reference", "empty-reference", "unknown-member", "number-amount"])
def test_a_malformed_payment_never_reaches_the_bank(server, shop, sandbox_bank, detail, why):
    response = push(shop, detail)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"
    assert why in response.json()["error_description"]
    assert sandbox_bank.admin.stats()["payment_consents"] == 0


def test_a_payment_cannot_be_mixed_with_data(server, shop):
    mixed = push(shop, scope="openid accounts:read")
    assert mixed.status_code == 400 and mixed.json()["error"] == "invalid_scope"
    two = shop.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "code_challenge": pkce()[1],
                             "code_challenge_method": "S256", "authorization_details": json.dumps(
                                 [payment_initiation(), {"type": "account_information",
                                                         "actions": ["accounts:read"]}])})
    assert two.json()["error"] == "invalid_authorization_details"
    managing = push(shop, grant_management_action="replace", grant_id="g-1")
    assert managing.json()["error"] == "invalid_request"
    bare = shop.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "scope": "payments",
                              "code_challenge": pkce()[1], "code_challenge_method": "S256"})
    assert bare.json()["error"] == "invalid_scope"


def test_a_payment_must_be_pushed(server, shop, nat):
    url = authorization_url(server, client_id=shop.client_id, response_type="code", redirect_uri=REDIRECT,
                            state="st-1", code_challenge=pkce()[1], code_challenge_method="S256",
                            authorization_details=json.dumps([payment_initiation()]))
    response = nat.http.get(url, allow_redirects=False)
    params = assert_error_redirect(response, server, "invalid_request")
    assert "PAR" in params["error_description"]


def test_a_reference_too_long_for_the_bank_offers_no_payer_and_sends_nothing(server, shop, nat, sandbox_bank):
    page, _ = consent_page(server, shop, nat, payment_initiation(reference="A-REFERENCE-OF-24-CHARS"))
    assert "None of your connected institutions can make this payment" in page.text
    assert "longer than 18 characters" in page.text
    assert 'name="registration"' not in page.text
    answer = decide(nat, page, "deny")
    assert_error_redirect(answer, server, "access_denied")
    assert sandbox_bank.admin.stats()["payment_consents"] == 0


def test_an_app_not_registered_for_payments_cannot_ask(server, sandbox_bank):
    reader = make_app(server, scope=f"openid {DATA}")
    response = push(reader)
    assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"
    assert "payments" in response.json()["error_description"]


def test_denial_at_the_bank_is_access_denied_and_nothing_is_paid(server, shop, nat, sandbox_bank):
    answer, _ = pay(server, shop, nat, sandbox_bank, decision="deny")
    assert answer["error"] == "access_denied" and answer["state"] == "st-1" and answer["iss"] == server.url
    assert "not authorized at the bank" in answer["error_description"]
    assert sandbox_bank.admin.stats()["payments"] == 0
    person = server.services.store.people.find_by_username("nat")
    assert server.services.store.payments.for_person(person.id) == []


def test_paying_as_another_bank_customer_pays_nothing(server, shop, nat, sandbox_bank):
    answer, _ = pay(server, shop, nat, sandbox_bank, username="someone-else")
    assert answer["error"] == "upstream_error" and "different customer" in answer["error_description"]
    assert sandbox_bank.admin.stats()["payments"] == 0


def test_denial_on_the_consent_page_is_access_denied(server, shop, nat, sandbox_bank):
    page, _ = consent_page(server, shop, nat)
    assert_error_redirect(decide(nat, page, "deny"), server, "access_denied")
    assert sandbox_bank.admin.stats()["payment_consents"] == 0


def test_only_the_app_paid_reads_the_payment(server, shop, nat, sandbox_bank):
    answer, verifier = pay(server, shop, nat, sandbox_bank)
    tokens = token(shop, answer["code"], verifier)
    payment_id = tokens["authorization_details"][0]["payment_id"]
    other = make_app(server, client_name="Other shop", scope="payments", grant_types=["client_credentials"],
                     redirect_uris=[], response_types=[])
    theirs = other.post("/token", {"grant_type": "client_credentials", "scope": "payments"}).json()
    refused = read_payment(server, theirs["access_token"], payment_id)
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert read_payment(server, tokens["access_token"], "no-such-payment").status_code == 404
    assert read_payment(server, tokens["access_token"], payment_id).status_code == 200


def test_a_payment_token_reads_no_data_and_a_data_token_reads_no_payment(server, shop, nat, sandbox_bank):
    answer, verifier = pay(server, shop, nat, sandbox_bank)
    tokens = token(shop, answer["code"], verifier)
    introspection = shop.post("/introspect", {"token": tokens["access_token"]}).json()
    assert introspection["active"] is True
    assert not introspection.get("institutions")

    reader = make_app(server, scope=f"openid {DATA}")
    verifier, challenge = pkce()
    url = authorization_url(server, client_id=reader.client_id, response_type="code", redirect_uri=REDIRECT,
                            scope=f"openid {DATA}", state="st-1", code_challenge=challenge,
                            code_challenge_method="S256")
    data_answer = response_params(decide(nat, walk(nat, url)))
    data_tokens = token(reader, data_answer["code"], verifier)
    assert data_tokens["authorization_details"][0]["name"] == "Bank of Astoria"
    refused = read_payment(server, data_tokens["access_token"],
                           tokens["authorization_details"][0]["payment_id"])
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert 'scope="payments"' in refused.headers["WWW-Authenticate"]


def test_reading_a_payment_needs_a_token(server):
    response = requests.get(f"{server.url}/payments/anything", timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_a_payment_in_a_signed_request_object_is_validated_like_any_other(server, nat, sandbox_bank):
    key = new_key()
    shop = make_app(server, key=key, client_name="Acme Coffee", scope="openid payments")
    _, challenge = pkce()
    common = {"response_type": "code", "redirect_uri": REDIRECT, "state": "st-1",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    bad = shop.post("/par", {"request": shop.request_object(
        **common, authorization_details=[payment_initiation("1.999")])})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_authorization_details"
    good = shop.post("/par", {"request": shop.request_object(
        **common, authorization_details=[payment_initiation()])})
    assert good.status_code == 201, good.text
    page = walk(nat, f"/authorize?client_id={shop.client_id}&request_uri={good.json()['request_uri']}")
    assert payment_sentence(page).startswith("Pay £1.50 to Acme Ltd")
    assert sandbox_bank.admin.stats()["payment_consents"] == 0


def test_a_payment_is_never_approved_silently(server, shop, nat):
    pushed = push(shop, prompt="none")
    assert pushed.status_code == 201
    answer = nat.http.get(nat.url(f"/authorize?client_id={shop.client_id}"
                                  f"&request_uri={pushed.json()['request_uri']}"), allow_redirects=False)
    assert_error_redirect(answer, server, "consent_required")


def test_a_payment_the_account_cannot_cover_is_rejected_and_the_app_told(server, shop, nat, sandbox_bank):
    answer, _ = pay(server, shop, nat, sandbox_bank, detail=payment_initiation("999999999.00"))
    assert answer["error"] == "access_denied" and "could not cover" in answer["error_description"]
    person = server.services.store.people.find_by_username("nat")
    [record] = server.services.store.payments.for_person(person.id)
    assert record.status == "rejected" and record.client_id == shop.client_id
    dashboard = nat.http.get(nat.url("/")).text
    assert "rejected" in dashboard and "the bank said rejected" in dashboard


def test_a_replayed_bank_callback_completes_nothing_twice(server, shop, nat, sandbox_bank):
    page, _ = consent_page(server, shop, nat)
    to_bank = decide(nat, page)
    callback = sandbox_bank.login_and_approve(to_bank.headers["Location"], username="nat")
    assert nat.http.get(callback, allow_redirects=False).headers["Location"].startswith(REDIRECT)
    replay = nat.http.get(callback, allow_redirects=False)
    assert replay.status_code == 400 and "expired or was already completed" in replay.text
    assert sandbox_bank.admin.stats()["payments"] == 1


def test_deleting_the_person_erases_their_payments(server, shop, nat, sandbox_bank):
    answer, verifier = pay(server, shop, nat, sandbox_bank)
    tokens = token(shop, answer["code"], verifier)
    store = server.services.store
    person = store.people.find_by_username("nat")
    [record] = store.payments.for_person(person.id)
    assert delete_person(server.services, person) == []
    assert store.payments.get(record.id) is None
    assert not store.redis.exists(key_names.payment(person.id, record.id),
                                  key_names.person_payments(person.id))
    assert read_payment(server, tokens["access_token"], record.id).status_code == 401


def test_a_dpop_bound_payment_token_reads_the_payment_only_with_its_proof(server, shop, nat, sandbox_bank):
    holder = DPoPKey()
    answer, verifier = pay(server, shop, nat, sandbox_bank)
    exchanged = shop.post("/token", {"grant_type": "authorization_code", "code": answer["code"],
                                     "redirect_uri": REDIRECT, "code_verifier": verifier},
                          headers={"DPoP": holder.proof("POST", f"{server.url}/token")})
    tokens = exchanged.json()
    assert tokens["token_type"] == "DPoP", tokens
    url = f"{server.url}/payments/{tokens['authorization_details'][0]['payment_id']}"
    proven = requests.get(url, timeout=10, headers={
        "Authorization": f"DPoP {tokens['access_token']}",
        "DPoP": holder.proof("GET", url, token=tokens["access_token"])})
    assert proven.status_code == 200 and proven.json()["creditorName"] == "Acme Ltd"
    bearer = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert bearer.status_code == 401


def test_paying_from_an_institution_not_offered_is_refused_on_the_page(server, shop, nat, sandbox_bank):
    page, _ = consent_page(server, shop, nat)
    for forged in (["not-a-registration"], []):
        again = decide(nat, page, registrations=forged)
        assert again.status_code == 400 and "Choose one of the listed institutions" in again.text
    assert sandbox_bank.admin.stats()["payment_consents"] == 0


def test_one_apps_data_grant_and_payment_stay_apart(server, nat, sandbox_bank):
    app = make_app(server, client_name="Acme Coffee", scope="openid accounts:read payments")
    verifier, challenge = pkce()
    url = authorization_url(server, client_id=app.client_id, response_type="code", redirect_uri=REDIRECT,
                            scope="openid accounts:read", state="st-1", code_challenge=challenge,
                            code_challenge_method="S256")
    data_tokens = token(app, response_params(decide(nat, walk(nat, url)))["code"], verifier)
    answer, verifier = pay(server, app, nat, sandbox_bank)
    paid = token(app, answer["code"], verifier)
    assert paid["grant_id"] == data_tokens["grant_id"]  # one grant per app and person
    introspection = app.post("/introspect", {"token": paid["access_token"]}).json()
    assert introspection["institutions"] == {}
    payment_id = paid["authorization_details"][0]["payment_id"]
    refused = read_payment(server, data_tokens["access_token"], payment_id)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    data = app.post("/introspect", {"token": data_tokens["access_token"]}).json()
    assert set(data["institutions"]) == {"Bank of Astoria"}


def test_a_card_issuer_is_not_offered_to_pay(server, nat, shop, sandbox_bank):
    """Monami Card holds no account a payment can come from (its metadata offers no payments
    scope): the page says so and offers only Bank of Astoria; the bank saw no consent for it."""
    connect(nat, sandbox_bank, "monami")
    page, _ = consent_page(server, shop, nat)
    assert page.text.count('type="radio" name="registration"') == 1
    assert "Not offered: Monami Card (it holds no account a payment can come from)" in page.text
    assert sandbox_bank.admin.stats()["payment_consents"] == 0
