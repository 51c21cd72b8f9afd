"""A person pays a merchant from a bank linked through Moneyhub, every step over HTTP.

The plugin is driven as the core would drive it (check, begin, the person approves at the fake,
complete, status); the fake's request log and records show what reached Moneyhub.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests

from aggregator.upstream.contract import (
    InvalidPaymentRequest,
    LinkInvalid,
    PaymentDenied,
    PaymentRequest,
    PaymentResult,
    Registration,
    supports_payments,
)
from plugins.moneyhub.plugin import MoneyhubPlugin
from tests.fixtures.moneyhub import MoneyhubFake
from tests.moneyhub.journeys import approve, link, person, registration
from tests.moneyhub.partner import Partner

MODELO = "b9be1fc1e54ae6d4229967411dc28545"
ACME = PaymentRequest(amount="1.50", currency="GBP", creditor_name="Acme Ltd",
                      sort_code="123456", account_number="12345678", reference="INV-1234",
                      debtor_reference="Acme order")


@pytest.fixture
def paying(make_plugin, moneyhub_fake: MoneyhubFake) -> tuple[MoneyhubPlugin, Registration]:
    """A plugin and a registration at the Modelo bank, with the fake's log emptied."""
    plugin = make_plugin()
    who = person()
    linked = link(plugin, who, MODELO)[0]
    moneyhub_fake.controls.clear_log()
    return plugin, registration(who, linked)


def pay(plugin: MoneyhubPlugin, reg: Registration, payment: PaymentRequest = ACME
        ) -> PaymentResult:
    """The core's part (check, begin, complete) around the person approving at the bank."""
    state = secrets.token_urlsafe(16)
    plugin.check_payment(payment)
    start = plugin.begin_payment(reg, payment, state=state)
    params = approve(start)
    assert params["state"] == state
    return plugin.complete_payment(reg, params, start.remember)


def calls(fake: MoneyhubFake, endpoint: str) -> int:
    return len(fake.controls.requests(endpoint))


# ------------------------------------------------------------------------ payees


def test_moneyhub_can_pay(paying):
    plugin, _ = paying
    assert supports_payments(plugin)


def test_a_payee_is_created_once_per_creditor_account_and_reused(paying, moneyhub_fake):
    plugin, reg = paying
    first, second = pay(plugin, reg), pay(plugin, reg, replace(ACME, amount="20.00"))
    other = pay(plugin, reg, replace(ACME, account_number="87654321"))

    assert calls(moneyhub_fake, "payments.create_payee") == 2  # Acme once, the other account once
    payees = moneyhub_fake.controls.payees()
    assert [(p.sort_code, p.account_number, p.name) for p in payees] == [
        ("123456", "12345678", "Acme Ltd"), ("123456", "87654321", "Acme Ltd")]
    made = {p.id: p for p in moneyhub_fake.controls.payments()}
    assert made[first.payment_id].payee_id == made[second.payment_id].payee_id == payees[0].id
    assert made[other.payment_id].payee_id == payees[1].id
    # each new creditor was looked up once before its creation; the repeat came from the cache
    assert calls(moneyhub_fake, "payments.list_payees") == 2
    scopes = {r.form["scope"] for r in moneyhub_fake.controls.token_requests("client_credentials")}
    assert {"payee:read", "payee:create", "payment:read"} <= scopes


def test_a_payee_lost_from_the_cache_is_found_again_not_created_twice(paying, moneyhub_fake,
                                                                       redis_url):
    plugin, reg = paying
    pay(plugin, reg)
    redis.Redis.from_url(redis_url).flushall()  # the plugin cache forgets everything
    pay(plugin, reg)
    assert calls(moneyhub_fake, "payments.create_payee") == 1
    assert len(moneyhub_fake.controls.payees()) == 1
    assert len({p.payee_id for p in moneyhub_fake.controls.payments()}) == 1


def test_a_remembered_payee_deactivated_at_moneyhub_is_replaced(paying, moneyhub_fake):
    plugin, reg = paying
    first = pay(plugin, reg)
    old = moneyhub_fake.controls.payment(first.payment_id).payee_id
    moneyhub_fake.controls.deactivate_payee(old)
    second = pay(plugin, reg)
    new = moneyhub_fake.controls.payment(second.payment_id).payee_id
    assert new != old
    assert [p.active for p in moneyhub_fake.controls.payees()] == [False, True]
    assert calls(moneyhub_fake, "oidc.par") == 2 + 1  # the refused push, then the good one
    third = pay(plugin, reg)
    assert moneyhub_fake.controls.payment(third.payment_id).payee_id == new
    assert calls(moneyhub_fake, "payments.create_payee") == 2


# ------------------------------------------------------------------------ the request object


def test_the_request_object_carries_the_exact_payment_claim(paying, moneyhub_fake):
    plugin, reg = paying
    plugin.begin_payment(reg, ACME, state="s-1")
    [pushed] = moneyhub_fake.controls.pushed_requests()[-1:]
    payee = moneyhub_fake.controls.payees()[0]
    assert pushed.journey == "payment"
    assert pushed.request_object["scope"] == f"openid payment id:{MODELO}"
    assert pushed.claims == {"id_token": {
        "sub": {"essential": True, "value": reg.metadata["moneyhub_user_id"]},
        "mh:con_id": {"essential": True},
        "mh:payment": {"essential": True, "value": {
            "payeeId": payee.id, "amount": 150, "payeeRef": "INV-1234", "payerRef": "Acme order",
        }},
    }}
    assert pushed.state == "s-1"
    assert pushed.redirect_uri == plugin.context.callback_url
    # pushed (PAR), client-authenticated, as a signed request object only
    [par] = moneyhub_fake.controls.requests("oidc.par")
    assert set(par.form) == {"client_id", "request"}


def test_without_a_payer_reference_the_payee_reference_is_on_both_statements(paying,
                                                                            moneyhub_fake):
    plugin, reg = paying
    pay(plugin, reg, replace(ACME, debtor_reference=None))
    [made] = moneyhub_fake.controls.payments()
    assert (made.payee_ref, made.payer_ref, made.amount) == ("INV-1234", "INV-1234", 150)


def test_without_par_the_request_object_goes_to_the_request_object_endpoint(make_plugin,
                                                                            moneyhub_fake):
    moneyhub_fake.controls.advertise(par=False)
    plugin = make_plugin()
    who = person()
    reg = registration(who, link(plugin, who, MODELO)[0])  # links take the same way
    moneyhub_fake.controls.clear_log()
    start = plugin.begin_payment(reg, ACME, state="s-2")

    query = parse_qs(urlsplit(start.redirect_url).query)
    assert query["request_uri"][0].startswith("urn:x-mh-request:")
    assert query["scope"] == [f"openid payment id:{MODELO}"]
    [registered] = moneyhub_fake.controls.requests("oidc.par")
    assert registered.headers["Content-Type"] == "application/jws"
    assert "Authorization" not in registered.headers  # the signature is the authentication
    params = approve(start)
    result = plugin.complete_payment(reg, params, start.remember)
    assert result.payment_id == moneyhub_fake.controls.payments()[0].id


# ------------------------------------------------------------------------ nothing leaves


@pytest.mark.parametrize(("change", "message"), [
    ({"reference": "R" * 19}, "payee reference of 1 to 18"),
    ({"reference": ""}, "payee reference of 1 to 18"),
    ({"debtor_reference": "D" * 19}, "payer reference of at most 18"),
    ({"amount": "-1.50"}, "positive"),
    ({"amount": "-0.50"}, "positive"),
    ({"amount": "0.00"}, "positive"),
    ({"amount": "1.505"}, "two decimals"),
    ({"currency": "EUR"}, "GBP only"),
    ({"sort_code": "12-34-56"}, "sort code"),
])
def test_a_payment_moneyhub_would_refuse_never_leaves_the_plugin(paying, moneyhub_fake, change,
                                                                 message):
    plugin, reg = paying
    payment = replace(ACME, **change)
    with pytest.raises(InvalidPaymentRequest, match=message):
        plugin.check_payment(payment)
    with pytest.raises(InvalidPaymentRequest, match=message):
        plugin.begin_payment(reg, payment, state="s")
    assert moneyhub_fake.controls.requests() == []


# ------------------------------------------------------------------------ the callback


def test_the_payment_id_comes_from_the_verified_id_token(paying, moneyhub_fake):
    plugin, reg = paying
    result = pay(plugin, reg)
    [made] = moneyhub_fake.controls.payments()
    assert result == PaymentResult(made.id, "pending")
    assert made.exchanged_at is not None  # the code exchange completed it at Moneyhub
    assert made.user_id == reg.metadata["moneyhub_user_id"]
    assert made.bank_id == MODELO
    [exchange] = moneyhub_fake.controls.token_requests("authorization_code")
    assert exchange.form["redirect_uri"] == plugin.context.callback_url
    assert "code_verifier" in exchange.form  # PKCE


@pytest.mark.parametrize(("fault", "message"), [
    ("signature", "signature does not verify"),
    ("nonce", "nonce"),
    ("aud", "another client"),
    ("sub", "another user"),
])
def test_a_tampered_id_token_is_refused(paying, moneyhub_fake, fault, message):
    plugin, reg = paying
    start = plugin.begin_payment(reg, ACME, state="s-3")
    params = approve(start)
    moneyhub_fake.controls.corrupt_id_tokens(fault, channel="token")
    with pytest.raises(LinkInvalid, match=message):
        plugin.complete_payment(reg, params, start.remember)
    assert calls(moneyhub_fake, "payments.get_payment") == 0


def test_a_hybrid_front_channel_id_token_is_checked_too(make_plugin, moneyhub_fake):
    plugin = make_plugin(response_type="code id_token")
    who = person()
    reg = registration(who, link(plugin, who, MODELO)[0])
    assert pay(plugin, reg).status == "pending"
    start = plugin.begin_payment(reg, ACME, state="s-4")
    params = approve(start)
    assert "id_token" in params
    params["state"] = "s-other"  # s_hash no longer matches
    with pytest.raises(LinkInvalid, match="s_hash"):
        plugin.complete_payment(reg, params, start.remember)


def test_a_refusal_at_the_bank_is_a_denied_payment(paying, moneyhub_fake):
    plugin, reg = paying
    moneyhub_fake.controls.deny_authorization()
    start = plugin.begin_payment(reg, ACME, state="s-5")
    params = approve(start)
    assert params["error"] == "access_denied"
    with pytest.raises(PaymentDenied):
        plugin.complete_payment(reg, params, start.remember)
    assert moneyhub_fake.controls.payments() == []
    assert moneyhub_fake.controls.token_requests("authorization_code") == []


# ------------------------------------------------------------------------ status


@pytest.mark.parametrize(("upstream", "status", "error"), [
    ("completed", "completed", None),
    ("AcceptedSettlementCompleted", "completed", None),
    ("rejected", "rejected", "The bank rejected the payment."),
    ("failed", "failed", "The payment failed at Moneyhub or the bank."),
    ("AcceptedSettlementInProcess", "pending", None),
])
def test_the_status_moves_from_pending_as_the_bank_settles(paying, moneyhub_fake, upstream,
                                                           status, error):
    plugin, reg = paying
    result = pay(plugin, reg)
    assert result.status == "pending"
    assert plugin.payment_status(reg, result.payment_id) == result
    moneyhub_fake.controls.settle_payment(result.payment_id, upstream)
    assert plugin.payment_status(reg, result.payment_id) == PaymentResult(
        result.payment_id, status, error)
    reads = moneyhub_fake.controls.requests("payments.get_payment")
    assert len(reads) == 3
    assert all(r.path == f"/payments/{result.payment_id}" for r in reads)


def test_the_payment_id_survives_a_status_read_that_fails(paying, moneyhub_fake):
    plugin, reg = paying
    moneyhub_fake.controls.fail("payments.get_payment", 503)
    result = pay(plugin, reg)
    assert result == PaymentResult(moneyhub_fake.controls.payments()[0].id, "pending")


# ------------------------------------------------------------------------ the fake's own rules


def create_payee(partner: Partner) -> dict:
    """``POST /payees`` as seed 001 shows it, by a partner independent of the plugin."""
    token = partner.client_credentials("payee:create")
    created = requests.post(f"{partner.fake.identity_url}/payees", timeout=5,
                            json={"sortCode": "123456", "accountNumber": "12345678", "name": "A"},
                            headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    return created.json()["data"]


def test_the_fake_checks_payee_and_payment_scopes(moneyhub_fake):
    partner = Partner(moneyhub_fake, moneyhub_fake.basic_client)
    read_only = partner.client_credentials("payee:read")
    refused = requests.post(f"{moneyhub_fake.identity_url}/payees", timeout=5,
                            json={"sortCode": "123456", "accountNumber": "12345678", "name": "A"},
                            headers={"Authorization": f"Bearer {read_only}"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    listed = requests.get(f"{moneyhub_fake.identity_url}/payments", timeout=5,
                          headers={"Authorization": f"Bearer {read_only}"})
    assert listed.status_code == 403


@pytest.mark.parametrize(("value", "problem"), [
    ({"amount": "150"}, "positive integer"),
    ({"amount": 0}, "positive integer"),
    ({"payeeRef": "R" * 19}, "payeeRef"),
    ({"payeeId": "unknown"}, "payee"),
])
def test_the_fake_refuses_a_payment_claim_moneyhub_would_refuse(moneyhub_fake, value, problem):
    partner = Partner(moneyhub_fake, moneyhub_fake.basic_client)
    claim = {"payeeId": create_payee(partner)["id"], "amount": 150, "payeeRef": "ref",
             "payerRef": "ref", **value}
    pushed = partner.push(scope=f"openid payment id:{MODELO}", claims={"id_token": {
        "mh:payment": {"essential": True, "value": claim}}})
    assert pushed.status_code == 400
    assert problem in pushed.json()["error_description"]


def test_the_fake_pays_without_a_user_as_seed_001_shows(moneyhub_fake):
    partner = Partner(moneyhub_fake, moneyhub_fake.basic_client)
    payee = create_payee(partner)
    params = partner.journey(scope=f"openid payment id:{MODELO}", claims={"id_token": {
        "mh:con_id": {"essential": True},
        "mh:payment": {"essential": True, "value": {
            "payeeId": payee["id"], "amount": 100, "payeeRef": "Payee ref",
            "payerRef": "Payer ref"}}}})
    assert "code" in params
    [made] = moneyhub_fake.controls.payments()
    assert made.exchanged_at is None  # not completed until the code is exchanged
    listed = requests.get(f"{moneyhub_fake.identity_url}/payments", timeout=5, headers={
        "Authorization": f"Bearer {partner.client_credentials('payment:read')}"}).json()["data"]
    assert [p["id"] for p in listed] == [made.id]
    assert "exchangedAt" not in listed[0]
