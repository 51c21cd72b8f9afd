"""Stale-token feedback over HTTP: an institution refuses a token the AS released, the app says so
at introspection (``rejected_registration``) and gets a fresh one; twenty apps saying so at once
cause one upstream refresh; a registration outside the token is refused; an upstream that refuses
the refresh leaves the registration ``reauth_required``."""

from __future__ import annotations

from queue import SimpleQueue

import pytest
import requests

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.introspection.apps import App, access_token, grant_to, register_app
from tests.introspection.crowd import at_once
from tests.introspection.test_story import connect
from tests.oauth.apps import person_id_of, signed_up


@pytest.fixture
def server(sandbox_as) -> LiveAS:
    return sandbox_as


@pytest.fixture
def nat(server, sandbox_bank) -> PersonAgent:
    """Nat with Bank of Astoria and Monami Card linked."""
    agent = signed_up(server, "nat")
    connect(agent, sandbox_bank, "astoria")
    connect(agent, sandbox_bank, "monami")
    return agent


def registration_id(server: LiveAS, person_id: str, name: str) -> str:
    [found] = [r.id for r in server.services.store.registrations.list(person_id)
               if r.institution_name == name]
    return found


def apps_on_astoria(server: LiveAS, nat: PersonAgent, count: int) -> tuple[list[tuple[App, str]], str]:
    """``count`` apps, each consented to by Nat for Bank of Astoria only, with an access token;
    and Astoria's registration id."""
    svc = server.services
    person_id = person_id_of(server, nat)
    astoria = registration_id(server, person_id, "Bank of Astoria")
    apps = []
    for number in range(count):
        app = register_app(svc, f"App {number}")
        apps.append((app, access_token(svc, app, grant_to(svc, app, person_id, [astoria]))))
    return apps, astoria


def astoria_entry(app: App, issuer: str, token: str, **extra: str) -> dict:
    answer = app.introspect(issuer, token, **extra)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["active"] is True and list(body["institutions"]) == ["Bank of Astoria"]
    return body["institutions"]["Bank of Astoria"]


def accounts(entry: dict) -> requests.Response:
    return requests.get(f"{entry['endpoint']}/accounts", timeout=10,
                        headers={"Authorization": f"Bearer {entry['access_token']}"})


def refreshes(bank) -> int:
    return bank.admin.stats()["token_requests"]["by_grant_type"].get("refresh_token", 0)


def test_a_token_the_bank_revoked_is_replaced_by_one_that_works(server, sandbox_bank, nat):
    [(app, token)], astoria = apps_on_astoria(server, nat, 1)
    first = astoria_entry(app, server.url, token)
    assert accounts(first).status_code == 200

    assert sandbox_bank.admin.revoke_token(first["access_token"]) == {"revoked": True}
    refused = accounts(first)
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
    # without the report the AS still hands out the cached (revoked) token
    assert astoria_entry(app, server.url, token)["access_token"] == first["access_token"]

    fresh = astoria_entry(app, server.url, token, rejected_registration=astoria)

    assert fresh["status"] == "ok" and fresh["registration_id"] == astoria
    assert fresh["access_token"] != first["access_token"]
    answer = accounts(fresh)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]
    # the new token is the cached one from now on
    assert astoria_entry(app, server.url, token)["access_token"] == fresh["access_token"]


def test_twenty_apps_reporting_at_once_cause_one_upstream_refresh(server, sandbox_bank, nat):
    apps, astoria = apps_on_astoria(server, nat, 20)
    app, token = apps[0]
    revoked = astoria_entry(app, server.url, token)["access_token"]
    sandbox_bank.admin.revoke_token(revoked)
    sandbox_bank.admin.reset()  # count from here
    sandbox_bank.admin.set_faults(latency_ms=300)  # every report arrives while the refresh runs

    pending: SimpleQueue[tuple[App, str]] = SimpleQueue()
    for each in apps:
        pending.put(each)

    def report() -> dict:
        reporter, its_token = pending.get()
        return astoria_entry(reporter, server.url, its_token, rejected_registration=astoria)

    entries = at_once(20, report)

    assert refreshes(sandbox_bank) == 1
    handed = {entry["access_token"] for entry in entries}
    assert len(handed) == 1 and revoked not in handed
    assert accounts(entries[0]).status_code == 200
    # a report within 30 s of the forced refresh uses the token it fetched: no second refresh
    again = astoria_entry(app, server.url, token, rejected_registration=astoria)
    assert again["access_token"] in handed and refreshes(sandbox_bank) == 1


def test_a_registration_the_token_does_not_reach_is_invalid_request(server, sandbox_bank, nat):
    [(app, token)], _ = apps_on_astoria(server, nat, 1)
    monami = registration_id(server, person_id_of(server, nat), "Monami Card")
    sandbox_bank.admin.reset()

    answers = [app.introspect(server.url, token, rejected_registration=rid)
               for rid in (monami, "no-such-registration")]

    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_request"
    # the same words whether the registration is the person's or does not exist at all
    assert answers[0].json() == answers[1].json()
    assert refreshes(sandbox_bank) == 0


def test_an_upstream_refusing_the_refresh_leaves_the_registration_reauth_required(
        server, sandbox_bank, nat):
    [(app, token)], astoria = apps_on_astoria(server, nat, 1)
    astoria_entry(app, server.url, token)
    sandbox_bank.admin.revoke("astoria", "nat")  # the bank ends the whole grant

    entry = astoria_entry(app, server.url, token, rejected_registration=astoria)

    assert entry["status"] == "reauth_required"
    assert "access_token" not in entry and entry["error"]
    record = server.services.store.registrations.get(person_id_of(server, nat), astoria)
    assert record is not None and record.status == "reauth_required"
