"""A person registers institutions once, through the pages, against the real sandbox bank."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from aggregator.upstream.contract import DATA_SCOPES
from tests.fixtures.aggregator import PersonAgent


@pytest.fixture
def server(make_as, sandbox_bank):
    return make_as(
        AGGREGATOR_PLUGINS="sandbox",
        SANDBOX_URL=sandbox_bank.url,
        SANDBOX_CLIENT_ID=sandbox_bank.client_id,
        SANDBOX_CLIENT_SECRET=sandbox_bank.client_secret,
    )


@pytest.fixture
def person(server):
    agent = PersonAgent(server.url)
    agent.signup("nat")
    return agent


def start_link(agent: PersonAgent, institution: str, provider: str = "sandbox"):
    return agent.post_form("/connections/new", {"provider": provider, "institution": institution},
                           form_page="/connections/new")


def connect(agent: PersonAgent, bank, institution: str, username: str = "nat") -> requests.Response:
    start = start_link(agent, institution)
    assert start.status_code == 303, start.text
    callback = bank.login_and_approve(start.headers["Location"], username=username)
    return agent.http.get(callback, allow_redirects=False)


def registrations(server, username: str = "nat"):
    person = server.services.store.people.find_by_username(username)
    return server.services.store.registrations.list(person.id)


def test_two_institutions_become_two_working_registrations(server, person, sandbox_bank):
    chooser = person.http.get(person.url("/connections/new")).text
    for name in ("Bank of Astoria", "Monami Card", "Norma Securities", "Lastish Fundco"):
        assert name in chooser
    assert connect(person, sandbox_bank, "astoria").status_code == 303
    assert connect(person, sandbox_bank, "monami").status_code == 303

    found = registrations(server)
    assert sorted(r.institution_name for r in found) == ["Bank of Astoria", "Monami Card"]
    store = server.services.store.registrations
    for registration in found:
        assert registration.status == "ok"
        assert store.secrets(registration), "the upstream grant is kept (encrypted)"
        token = store.cached_token(registration.person_id, registration.id, DATA_SCOPES)
        response = requests.get(registration.endpoint + "/accounts", timeout=10,
                                headers={"Authorization": f"Bearer {token.access_token}"})
        assert response.status_code == 200, response.text

    page = person.http.get(person.url("/connections")).text
    assert page.count('name="registration"') == 2
    assert "Bank of Astoria" in page and "Monami Card" in page and "ok" in page


def test_linking_the_same_bank_user_again_updates_instead_of_duplicating(server, person, sandbox_bank):
    connect(person, sandbox_bank, "astoria")
    connect(person, sandbox_bank, "astoria")
    assert len(registrations(server)) == 1


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_tampered_state_is_refused_and_stores_nothing(server, person, sandbox_bank):
    start = start_link(person, "astoria")
    callback = sandbox_bank.login_and_approve(start.headers["Location"])
    response = person.http.get(_tamper(callback, state="forged-state-value"))
    assert response.status_code == 400
    assert "Start the connection again" in response.text
    assert registrations(server) == []


def test_a_replayed_callback_is_refused(server, person, sandbox_bank):
    start = start_link(person, "astoria")
    callback = sandbox_bank.login_and_approve(start.headers["Location"])
    assert person.http.get(callback, allow_redirects=False).status_code == 303
    replay = person.http.get(callback)
    assert replay.status_code == 400
    assert "already completed" in replay.text
    assert len(registrations(server)) == 1


def test_a_callback_in_another_browser_is_refused(server, person, sandbox_bank):
    start = start_link(person, "astoria")
    callback = sandbox_bank.login_and_approve(start.headers["Location"])
    other = PersonAgent(server.url)
    other.signup("mallory")
    response = other.http.get(callback)
    assert response.status_code == 400
    assert registrations(server, "mallory") == [] and registrations(server) == []


def test_the_person_saying_no_at_the_bank_stores_nothing(server, person, sandbox_bank):
    start = start_link(person, "astoria")
    callback = sandbox_bank.login_and_approve(start.headers["Location"], decision="deny")
    response = person.http.get(callback)
    assert response.status_code == 403
    assert "access_denied" in response.text or "refused" in response.text.lower()
    assert registrations(server) == []


def test_an_upstream_outage_during_the_callback_stores_nothing(server, person, sandbox_bank):
    start = start_link(person, "astoria")
    callback = sandbox_bank.login_and_approve(start.headers["Location"])
    sandbox_bank.admin.set_faults(failure_rate=1.0)
    response = person.http.get(callback)
    assert response.status_code == 503
    assert "cannot be reached" in response.text or "unavailable" in response.text.lower()
    assert registrations(server) == []


def test_an_unreachable_upstream_is_explained_in_the_chooser(make_as, sandbox_bank):
    from aggregator.testing.servers import reserve_port

    server = make_as(AGGREGATOR_PLUGINS="sandbox", SANDBOX_URL=f"http://127.0.0.1:{reserve_port()}",
                     SANDBOX_CLIENT_ID="x", SANDBOX_CLIENT_SECRET="y")
    agent = PersonAgent(server.url)
    agent.signup("offline")
    page = agent.http.get(agent.url("/connections/new"))
    assert page.status_code == 200
    assert 'class="error"' in page.text
    response = start_link(agent, "astoria")
    assert response.status_code in (400, 503)


@pytest.mark.parametrize(("provider", "institution"),
                         [("nosuch", "astoria"), ("sandbox", "nosuch"), ("", ""), ("sandbox", "")])
def test_wrong_provider_institution_pairs_are_refused(server, person, provider, institution):
    response = start_link(person, institution, provider)
    assert response.status_code == 400
    assert registrations(server) == []


def test_removal_revokes_upstream_and_leaves_every_grant(server, person, sandbox_bank):
    connect(person, sandbox_bank, "astoria")
    connect(person, sandbox_bank, "monami")
    astoria, monami = sorted(registrations(server), key=lambda r: r.institution_name)
    store = server.services.store
    refresh_token = store.registrations.secrets(astoria)["refresh_token"]
    grant = store.grants.create("some-app", astoria.person_id, ["accounts:read"],
                                {astoria.id: {"accounts:read"}, monami.id: {"accounts:read"}})

    response = person.post_form("/connections/remove", {"registration": astoria.id},
                                form_page="/connections")
    assert response.status_code == 303
    assert [r.id for r in registrations(server)] == [monami.id]
    assert store.grants.get(grant.id).registration_ids == frozenset({monami.id})
    refused = requests.post(sandbox_bank.issuer("astoria") + "/token", timeout=10,
                            auth=(sandbox_bank.client_id, sandbox_bank.client_secret),
                            data={"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    again = person.post_form("/connections/remove", {"registration": astoria.id},
                             form_page="/connections")
    assert again.status_code == 404


def test_reconnect_renews_the_same_registration(server, person, sandbox_bank):
    connect(person, sandbox_bank, "astoria")
    [before] = registrations(server)
    server.services.store.registrations.set_status(before, "reauth_required", "The bank said no.")
    start = person.post_form(f"/connections/{before.id}/reconnect", {}, form_page="/connections")
    assert start.status_code == 303
    callback = sandbox_bank.login_and_approve(start.headers["Location"], username="nat")
    assert person.http.get(callback, allow_redirects=False).status_code == 303
    [after] = registrations(server)
    assert after.id == before.id and after.status == "ok"


def test_connection_pages_require_login(server):
    anonymous = requests.get(server.url + "/connections", allow_redirects=False)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login")
