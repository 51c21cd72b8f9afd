"""Institution events: a Moneyhub webhook announcing new transactions, and a connection that
breaks at Moneyhub, reach exactly the apps whose grant covers that registration."""

from __future__ import annotations

import time

from aggregator.events.types import INSTITUTION_STATUS_CHANGED, NEW_DATA_AVAILABLE, event_uri
from tests.events.conftest import Receiver, events_app, push_stream, verified
from tests.moneyhub.test_through_the_as import (  # noqa: F401 - moneyhub_as is a fixture
    MODELO,
    TEST_BANK,
    connect,
    moneyhub_as,
    post_webhook,
    registrations_of,
)
from tests.oauth.apps import allow, ask

WEBHOOK = {"id": "5f0b1c2d-0000-4000-8000-000000000001", "eventType": "newTransactions",
           "payload": {"accounts": [{"id": "acc-1", "transactions": ["t-1", "t-2"]}]}}


def events_of(server, receiver: Receiver, count: int, timeout: float) -> list[dict]:
    return [verified(server, signed)[1] for signed in receiver.wait_for(count, timeout)]


def test_new_transactions_and_a_broken_connection_reach_only_the_apps_sharing_them(
        moneyhub_as, moneyhub_fake, person_agent, delivery_worker, receivers):  # noqa: F811
    server = moneyhub_as()
    agent = person_agent(server)
    agent.signup("iris")
    connect(agent, MODELO)
    connect(agent, TEST_BANK)
    by_bank = {r.institution_id: r for r in registrations_of(server, "iris")}
    modelo, test_bank = by_bank[MODELO], by_bank[TEST_BANK]
    grapher, budgeter = events_app(server, "Grapher"), events_app(server, "Budgeter")
    page, verifier = ask(server, grapher, agent, scope="openid accounts:read")
    shared = allow(grapher, agent, page, verifier, registrations=[modelo.id])
    page, verifier = ask(server, budgeter, agent, scope="openid accounts:read")
    allow(budgeter, agent, page, verifier, registrations=[test_bank.id])
    grapher_inbox, budgeter_inbox = receivers(), receivers()
    push_stream(server, grapher, grapher_inbox.url)
    push_stream(server, budgeter, budgeter_inbox.url)
    delivery_worker(server)

    answered = post_webhook(server, {**WEBHOOK, "userId": modelo.metadata["moneyhub_user_id"]})
    assert answered.status_code == 200, answered.text
    at = time.monotonic()
    (claims,) = events_of(server, grapher_inbox, 1, timeout=1.0)
    assert time.monotonic() - at <= 1.0
    assert claims["aud"] == grapher.client_id
    event = claims["events"][event_uri(server.url, NEW_DATA_AVAILABLE)]
    assert event == {"event_timestamp": event["event_timestamp"], "grant_id": shared["grant_id"],
                     "registration_id": modelo.id, "institution": modelo.institution_name}

    # the connection breaks at Moneyhub; the person's next visit finds it out
    moneyhub_fake.controls.set_connection_status(modelo.external_id, "error", "mfa_required")
    agent.http.get(agent.url("/connections"))
    assert by_id(server, modelo.id).status == "reauth_required"
    at = time.monotonic()
    claims = events_of(server, grapher_inbox, 2, timeout=1.0)[1]
    assert time.monotonic() - at <= 1.0
    event = claims["events"][event_uri(server.url, INSTITUTION_STATUS_CHANGED)]
    assert (event["status"], event["previous_status"], event["registration_id"]) == (
        "reauth_required", "ok", modelo.id)

    time.sleep(0.5)  # anything for the Budgeter would have arrived by now
    assert budgeter_inbox.requests_seen == 0, "the Budgeter's grant does not cover Modelo"


def by_id(server, registration_id: str):
    return next(r for r in registrations_of(server, "iris") if r.id == registration_id)
