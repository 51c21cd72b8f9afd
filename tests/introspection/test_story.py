"""The story end to end, over HTTP, with the sandbox bank and the sandbox plugin.

Nat links banks at the AS once; the Grapher goes through consent, gets a token, introspects it,
and calls each bank with the tokens it got back.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.introspection.crowd import at_once
from tests.oauth.apps import (
    INITIAL_ACCESS_TOKEN,
    App,
    code_flow,
    exchange,
    id_token_claims,
    make_app,
    signed_up,
)


@pytest.fixture
def server(make_as, sandbox_bank) -> LiveAS:
    return make_as(
        AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN,
        AGGREGATOR_PLUGINS="sandbox",
        SANDBOX_URL=sandbox_bank.url,
        SANDBOX_CLIENT_ID=sandbox_bank.client_id,
        SANDBOX_CLIENT_SECRET=sandbox_bank.client_secret,
        AGGREGATOR_UPSTREAM_TIMEOUT="2",
    )


def connect(agent: PersonAgent, bank, institution: str, username: str = "nat") -> None:
    """Nat connects an institution: the AS's chooser, the bank's login and approval, callback."""
    start = agent.post_form("/connections/new", {"provider": "sandbox", "institution": institution},
                            form_page="/connections/new")
    assert start.status_code in (302, 303), start.text
    callback = bank.login_and_approve(start.headers["Location"], username=username)
    done = agent.http.get(callback, allow_redirects=False)
    assert done.status_code in (302, 303), done.text


def grapher_token(server: LiveAS, agent: PersonAgent, app: App) -> dict:
    """The Grapher's authorization code flow through Nat's consent; the token response."""
    params, verifier = code_flow(server, app, agent)
    answer = exchange(app, params["code"], verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def introspect(app: App, url: str, token: str) -> dict:
    answer = app.post("/introspect", {"token": token})
    assert answer.status_code == 200, answer.text
    assert url == f"{app.server.url}/introspect"
    return answer.json()


def accounts(entry: dict) -> requests.Response:
    return requests.get(f"{entry['endpoint']}/accounts", timeout=10,
                        headers={"Authorization": f"{entry['token_type']} {entry['access_token']}"})


def nat_with_two_banks(server: LiveAS, bank, **faults) -> PersonAgent:
    """Nat, signed up, with Bank of Astoria and Monami Card linked (under the bank's ``faults``)."""
    if faults:
        bank.admin.set_faults(**faults)
    agent = signed_up(server, "nat")
    connect(agent, bank, "astoria")
    connect(agent, bank, "monami")
    return agent


@pytest.fixture
def nat(server, sandbox_bank) -> PersonAgent:
    return nat_with_two_banks(server, sandbox_bank)


def test_nat_links_two_banks_and_the_grapher_reads_both(server, sandbox_bank, nat):
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)

    body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])

    assert body["active"] is True
    assert set(body["institutions"]) == {"Bank of Astoria", "Monami Card"}
    # the same pairwise subject as in the Grapher's ID token
    assert body["sub"] == id_token_claims(server, tokens["id_token"])["sub"]
    for entry in body["institutions"].values():
        assert entry["provider"] == "sandbox" and entry["status"] == "ok"
        assert entry["expires_at"] >= time.time() + 60
        answer = accounts(entry)
        assert answer.status_code == 200, answer.text


def test_revoked_tokens_and_other_apps_learn_nothing(server, sandbox_bank, nat):
    grapher, snoop = make_app(server), make_app(server, client_name="Snoop")
    tokens = grapher_token(server, nat, grapher)
    assert introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])["active"]

    assert introspect(snoop, tokens["introspection_endpoint"], tokens["access_token"]) == {
        "active": False}

    revoked = grapher.post("/revoke", {"token": tokens["access_token"]})
    assert revoked.status_code == 200
    assert introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"]) == {
        "active": False}


def test_revoking_the_app_on_the_dashboard_ends_its_token_at_once(server, sandbox_bank, nat):
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    assert introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])["active"]

    [grant] = server.services.store.grants.for_person(
        server.services.store.people.find_by_username("nat").id)
    answer = nat.post_form(f"/apps/{grant.id}/revoke", {}, form_page="/")
    assert answer.status_code in (200, 302, 303), answer.text

    assert introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"]) == {
        "active": False}


def test_a_bank_ending_the_connection_asks_for_nat_only_there(server, sandbox_bank):
    # tokens shorter-lived than the AS's freshness window: every introspection must refresh
    nat = nat_with_two_banks(server, sandbox_bank, access_token_ttl=30)
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    sandbox_bank.admin.revoke("astoria", "nat")

    body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])

    astoria, monami = body["institutions"]["Bank of Astoria"], body["institutions"]["Monami Card"]
    assert astoria["status"] == "reauth_required" and "access_token" not in astoria
    assert astoria["error"]
    assert monami["status"] == "ok" and accounts(monami).status_code == 200


def test_a_rotated_refresh_token_survives_a_crash_before_the_answer(server, sandbox_bank, monkeypatch):
    nat = nat_with_two_banks(server, sandbox_bank, rotate_refresh_tokens=True, access_token_ttl=30)
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    registrations = server.services.store.registrations
    persist = registrations.store_refreshed

    def persist_then_die(*args, **kwargs):
        persist(*args, **kwargs)  # the bank has rotated; the new secrets are stored ...
        raise SystemError("... and the worker dies before answering")

    monkeypatch.setattr(registrations, "store_refreshed", persist_then_die)
    crashed = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
    monkeypatch.undo()
    assert {e["status"] for e in crashed["institutions"].values()} == {"error"}

    for _ in range(2):  # each refresh uses, and rotates, the refresh token stored last
        body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
        for entry in body["institutions"].values():
            assert entry["status"] == "ok", entry
            assert accounts(entry).status_code == 200
    # per bank: the crashed refresh, then two that each used the previous one's rotation
    assert refresh_count(sandbox_bank) == 6


def test_many_apps_polling_at_once_cause_one_refresh_per_bank(server, sandbox_bank):
    nat = nat_with_two_banks(server, sandbox_bank, access_token_ttl=30)
    sandbox_bank.admin.set_faults(latency_ms=200)
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    before = refresh_count(sandbox_bank)

    bodies = at_once(12, lambda: introspect(grapher, tokens["introspection_endpoint"],
                                            tokens["access_token"]))

    assert len(bodies) == 12
    assert {e["status"] for b in bodies for e in b["institutions"].values()} == {"ok"}
    assert refresh_count(sandbox_bank) - before == 2  # one per bank, not one per request


def test_two_slow_banks_are_refreshed_side_by_side(server, sandbox_bank):
    nat = nat_with_two_banks(server, sandbox_bank, access_token_ttl=30)
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    sandbox_bank.admin.set_faults(latency_ms=400)
    introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])  # warm up

    started = time.monotonic()
    body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
    elapsed = time.monotonic() - started

    assert {e["status"] for e in body["institutions"].values()} == {"ok"}
    assert 0.4 <= elapsed < 0.75, f"two 400 ms refreshes took {elapsed:.3f} s"


def refresh_count(bank) -> int:
    """Refresh-token grants the bank has answered, over all institutions."""
    return bank.admin.stats()["token_requests"]["by_grant_type"].get("refresh_token", 0)
