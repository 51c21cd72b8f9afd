"""The whole story through the AS's pages: a person connects banks via Moneyhub (and pays an
app through one of them).

The AS, the fake Moneyhub and the person's browser (requests, no JavaScript) talk real HTTP.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.fixtures.moneyhub import MoneyhubFake
from tests.moneyhub.reach import reached, tokens_reaching
from tests.oauth.apps import (
    INITIAL_ACCESS_TOKEN,
    REDIRECT,
    code_flow,
    exchange,
    make_app,
    response_params,
)
from tests.payments.journeys import at_the_bank, consent_page, payment_sentence, read_payment, token

MODELO = "b9be1fc1e54ae6d4229967411dc28545"
TEST_BANK = "235bd1c410e96b29dd34aa751d5cb054"
WEBHOOK_SECRET = "a-long-webhook-secret-0123456789"


@pytest.fixture
def moneyhub_as(make_as, moneyhub_fake: MoneyhubFake):
    """An AS with only the Moneyhub plugin, its callback registered at the fake."""

    def start(client: str = "basic", **settings: str):
        extra = {"MONEYHUB_STATUS_TTL": "0", "MONEYHUB_WEBHOOK_SECRET": WEBHOOK_SECRET}
        extra.update({f"MONEYHUB_{k.upper()}": v for k, v in settings.items()})
        env = moneyhub_fake.clients[client].env(moneyhub_fake, **extra)
        server = make_as(AGGREGATOR_PLUGINS="moneyhub",
                         AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN, **env)
        moneyhub_fake.controls.add_redirect_uri(
            f"{server.url}/connections/callback/moneyhub",
            moneyhub_fake.clients[client].client_id,
        )
        return server

    return start


def connect(agent, institution: str) -> requests.Response:
    """Pick ``institution`` on /connections/new and come back from Moneyhub."""
    started = agent.post_form("/connections/new",
                              {"provider": "moneyhub", "institution": institution})
    assert started.status_code == 303, started.text
    return back_from_moneyhub(agent, started.headers["Location"])


def back_from_moneyhub(agent, url: str) -> requests.Response:
    """Approve at the (auto-approving) fake and bring its answer to the AS's callback."""
    at_moneyhub = requests.get(url, allow_redirects=False, timeout=10)
    assert at_moneyhub.status_code == 302, at_moneyhub.text
    back = at_moneyhub.headers["Location"]
    parts = urlsplit(back)
    if parts.fragment:
        # what the AS's relay page does in a browser: post the fragment to the callback
        relay = agent.http.get(back.split("#")[0])
        assert relay.status_code == 200
        return agent.http.post(back.split("#")[0], data=dict(parse_qsl(parts.fragment)),
                               allow_redirects=False)
    return agent.http.get(back, allow_redirects=False)


def approve_only(agent, institution: str) -> None:
    """Start linking ``institution`` and approve at Moneyhub; the callback never reaches the AS
    (the tab was closed)."""
    started = agent.post_form("/connections/new",
                              {"provider": "moneyhub", "institution": institution})
    assert started.status_code == 303, started.text
    at_moneyhub = requests.get(started.headers["Location"], allow_redirects=False, timeout=10)
    assert at_moneyhub.status_code == 302, at_moneyhub.text


def registrations_of(server, username: str):
    svc = server.services
    person = svc.store.people.find_by_username(username)
    return svc.store.registrations.list(person.id)


def test_a_person_connects_two_banks_each_with_its_own_moneyhub_user(moneyhub_as,
                                                                       person_agent):
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("casey")
    chooser = agent.http.get(agent.url("/connections/new")).text
    assert "Modelo Open Banking Mock" in chooser
    assert connect(agent, MODELO).status_code == 303
    assert connect(agent, TEST_BANK).status_code == 303
    page = agent.http.get(agent.url("/connections")).text
    assert "Modelo Open Banking Mock" in page and "Moneyhub Test Bank (legacy)" in page
    stored = registrations_of(server, "casey")
    assert len(stored) == 2
    assert {r.provider for r in stored} == {"moneyhub"}
    assert [r.share_group for r in stored] == [None, None], "shared one by one, not as a group"
    assert len({r.metadata["moneyhub_user_id"] for r in stored}) == 2


def test_an_abandoned_link_is_reached_by_no_token_an_app_gets(moneyhub_as, person_agent,
                                                              moneyhub_fake):
    """The security review's scenario: bank A shared with the Grapher, bank B approved at
    Moneyhub but never registered here."""
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("ines")
    assert connect(agent, MODELO).status_code == 303
    (bank_a,) = registrations_of(server, "ines")
    grapher = make_app(server)
    params, verifier = code_flow(server, grapher, agent)
    token = exchange(grapher, params["code"], verifier).json()["access_token"]
    before = grapher.post("/introspect", {"token": token}).json()

    approve_only(agent, TEST_BANK)
    (bank_b,) = [c for u in moneyhub_fake.controls.users()
                 for c in moneyhub_fake.controls.connections(u.user_id)
                 if c.id != bank_a.external_id]
    assert bank_b.bank.id == TEST_BANK
    assert [r.id for r in registrations_of(server, "ines")] == [bank_a.id], "B is not registered"

    after = grapher.post("/introspect", {"token": token}).json()
    # an app consenting now, for other scopes, gets a token minted after the abandoned link
    budgeter = make_app(server, client_name="Budgeter")
    params, verifier = code_flow(server, budgeter, agent, scope="openid accounts:read")
    minted = budgeter.post("/introspect", {"token": exchange(
        budgeter, params["code"], verifier).json()["access_token"]}).json()
    tokens = set()
    for answer in (before, after, minted):
        (entry,) = answer["institutions"].values()
        assert entry["registration_id"] == bank_a.id
        assert reached(entry["endpoint"], entry["access_token"]) == {bank_a.external_id}
        tokens.add(entry["access_token"])
    assert len(tokens) == 2, "the Grapher's token, and one minted after bank B's approval"
    assert tokens_reaching(moneyhub_fake, bank_b.id) == [], "no data token reaches bank B"


def test_the_hybrid_response_comes_back_through_the_relay_page(moneyhub_as, person_agent):
    server = moneyhub_as("jwt", response_type="code id_token")
    agent = person_agent(server)
    agent.signup("dana")
    assert connect(agent, MODELO).status_code == 303
    assert [r.institution_name for r in registrations_of(server, "dana")] == [
        "Modelo Open Banking Mock"
    ]


@pytest.mark.parametrize("fault", ["signature", "nonce", "c_hash"])
def test_a_forged_callback_stores_nothing(moneyhub_as, person_agent, moneyhub_fake, fault):
    server = moneyhub_as("jwt", response_type="code id_token")
    agent = person_agent(server)
    agent.signup("erin")
    moneyhub_fake.controls.corrupt_id_tokens(fault, channel="authorization")
    answer = connect(agent, MODELO)
    assert answer.status_code == 400
    assert registrations_of(server, "erin") == []


def test_moneyhub_failing_stores_nothing(moneyhub_as, person_agent, moneyhub_fake):
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("frank")
    moneyhub_fake.controls.fail("oidc.token", 503, times=None)
    started = agent.post_form("/connections/new",
                              {"provider": "moneyhub", "institution": MODELO})
    assert started.status_code == 503
    assert registrations_of(server, "frank") == []


def test_removal_deletes_the_moneyhub_user(moneyhub_as, person_agent, moneyhub_fake):
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("jonah")
    connect(agent, MODELO)
    connect(agent, TEST_BANK)
    first, second = registrations_of(server, "jonah")
    removed = agent.post_form("/connections/remove", {"registration": first.id},
                              form_page="/connections")
    assert removed.status_code == 303
    assert moneyhub_fake.controls.user(first.metadata["moneyhub_user_id"]) is None
    assert moneyhub_fake.controls.connection(first.external_id) is None
    assert [u.user_id for u in moneyhub_fake.controls.users()] == [
        second.metadata["moneyhub_user_id"]
    ]


def test_a_broken_connection_shows_on_the_dashboard_and_removal_deletes_it(
    moneyhub_as, person_agent, moneyhub_fake
):
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("gale")
    connect(agent, MODELO)
    record = registrations_of(server, "gale")[0]
    moneyhub_fake.controls.set_connection_status(record.external_id, "error", "mfa_required")
    agent.http.get(agent.url("/connections"))
    assert registrations_of(server, "gale")[0].status == "reauth_required"

    removed = agent.post_form("/connections/remove", {"registration": record.id},
                              form_page="/connections")
    assert removed.status_code == 303
    assert registrations_of(server, "gale") == []
    assert moneyhub_fake.controls.connection(record.external_id) is None


def post_webhook(server, body, token: str = WEBHOOK_SECRET) -> requests.Response:
    return requests.post(f"{server.url}/plugins/moneyhub/webhooks", params={"token": token},
                         data=json.dumps(body), headers={"Content-Type": "application/json"},
                         timeout=10)


def test_webhooks_are_authenticated_validated_and_deduplicated(moneyhub_as, person_agent,
                                                               moneyhub_fake):
    server = moneyhub_as(status_ttl="300")
    agent = person_agent(server)
    agent.signup("hana")
    connect(agent, MODELO)
    record = registrations_of(server, "hana")[0]
    agent.http.get(agent.url("/connections"))  # caches the connection list for 300 s
    moneyhub_fake.controls.set_connection_status(record.external_id, "error", "resync")
    agent.http.get(agent.url("/connections"))
    assert registrations_of(server, "hana")[0].status == "ok", "still the cached list"

    event = {
        "id": "abe168ce-1b2f-4c38-9c92-db5730485cb3",
        "eventType": "newTransactions",
        "userId": record.metadata["moneyhub_user_id"],
        "payload": {"accounts": [{"id": "6d0baf11", "transactions": ["d520402a", "613586bf"]}]},
    }
    assert post_webhook(server, event, token="wrong-secret-0123456789").status_code == 404
    assert post_webhook(server, {**event, "payload": {"accounts": "x"}}).status_code == 400
    stranger = post_webhook(server, {**event, "userId": "5c79210bbac25ecb5e71ac40"})
    assert stranger.status_code == 400 and "userId" in stranger.json()["error_description"]
    accepted = post_webhook(server, event)
    assert accepted.status_code == 200 and accepted.json() == {"received": event["id"]}
    assert post_webhook(server, event).json()["duplicate"] is True
    assert registrations_of(server, "hana")[0].status == "reauth_required", (
        "the webhook made the plugin report the connection's status at once"
    )
    dashboard = agent.http.get(agent.url("/")).text
    assert "Moneyhub: 2 new transaction(s) in 1 account(s)." in dashboard


def test_a_deeply_nested_webhook_body_is_a_400(moneyhub_as):
    server = moneyhub_as()
    answer = requests.post(f"{server.url}/plugins/moneyhub/webhooks",
                           params={"token": WEBHOOK_SECRET}, data="[" * 10_000,
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"


def test_no_webhook_route_without_a_secret(make_as, moneyhub_fake):
    env = moneyhub_fake.basic_client.env(moneyhub_fake)
    server = make_as(AGGREGATOR_PLUGINS="moneyhub", **env)
    assert post_webhook(server, {}).status_code == 404


def test_an_app_is_paid_through_moneyhub_and_sees_the_payment_complete(moneyhub_as, person_agent,
                                                                        moneyhub_fake):
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("pat")
    assert connect(agent, MODELO).status_code == 303
    shop = make_app(server, client_name="Acme Coffee", scope="openid payments")

    page, verifier = consent_page(server, shop, agent)
    assert payment_sentence(page).startswith("Pay £1.50 to Acme Ltd")
    assert "Modelo Open Banking Mock" in page.text
    answer = back_from_moneyhub(agent, at_the_bank(agent, page).headers["Location"])
    assert answer.headers["Location"].startswith(REDIRECT), answer.text
    tokens = token(shop, response_params(answer)["code"], verifier)

    # Moneyhub received exactly the payment the app asked for, to a payee made for it
    (made,) = moneyhub_fake.controls.payments()
    (payee,) = moneyhub_fake.controls.payees()
    assert (made.amount, made.payee_ref, made.payee_id) == (150, "COFFEE-42", payee.id)
    assert (payee.sort_code, payee.account_number, payee.name) == ("123456", "12345678", "Acme Ltd")

    [detail] = tokens["authorization_details"]
    assert (detail["type"], detail["status"]) == ("payment_initiation", "pending")
    pending = read_payment(server, tokens["access_token"], detail["payment_id"]).json()
    assert (pending["status"], pending["institution"]) == ("pending", "Modelo Open Banking Mock")

    moneyhub_fake.controls.settle_payment(made.id)
    done = read_payment(server, tokens["access_token"], detail["payment_id"]).json()
    assert done["status"] == "completed"
    assert done["instructedAmount"] == {"currency": "GBP", "amount": "1.50"}
