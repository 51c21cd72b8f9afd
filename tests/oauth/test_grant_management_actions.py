"""OpenID Grant Management: an app asks for a new grant (``create``), to add to one it holds
(``merge``) or to start it over (``replace``), and reads what a grant allows per institution."""

from __future__ import annotations

import pytest
import requests

from tests.oauth.apps import (
    TRANSACTIONS_AND_ASTORIA_ACCOUNTS,
    account_information,
    allow,
    ask,
    assert_error_redirect,
    authorization_url,
    details,
    granted,
    make_app,
    person_id_of,
    pushed,
    response_params,
    seed_registration,
    signed_up,
    walk,
)


def read_grant(app, grant_id: str) -> dict:
    """``GET /grants/{id}`` as the app that holds the grant."""
    response = requests.get(f"{app.server.url}/grants/{grant_id}", auth=(app.client_id, app.secret),
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def consent_for(server, app, agent, *actions: str, at: list | None = None, **params: str) -> dict:
    """The app asks for ``actions`` at the institutions ``at`` (None: any) and the person
    allows, ticking exactly those (None: as the page ticks them); returns the token response."""
    names = None if at is None else [registration.institution_name for registration in at]
    page, verifier = ask(server, app, agent, scope="openid", authorization_details=details(
        account_information(*actions, institutions=names)), **params)
    return allow(app, agent, page, verifier,
                 registrations=None if at is None else [registration.id for registration in at])


def grants_of(server, agent, app) -> list:
    return server.services.store.grants.find(person_id_of(server, agent), app.client_id)


def test_discovery_lists_the_actions_and_none_is_required(server):
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["grant_management_actions_supported"] == ["create", "merge", "replace"]
    assert metadata["grant_management_action_required"] is False


def test_create_asks_again_and_makes_a_second_grant(server, nat, banks):
    astoria, _ = banks
    app = make_app(server)
    first = consent_for(server, app, nat, "accounts:read", at=[astoria])

    # without an action, the same request again is covered by the grant: no page
    again, _ = ask(server, app, nat, scope="openid", authorization_details=details(
        account_information("accounts:read", institutions=[astoria.institution_name])))
    assert "code" in response_params(again)

    second = consent_for(server, app, nat, "accounts:read", at=[astoria], grant_management_action="create")
    assert second["grant_id"] != first["grant_id"]
    grants = grants_of(server, nat, app)
    assert {grant.id for grant in grants} == {first["grant_id"], second["grant_id"]}
    assert read_grant(app, first["grant_id"])["authorization_details"] == [granted(astoria, "accounts:read")]
    assert read_grant(app, second["grant_id"])["authorization_details"] == [granted(astoria, "accounts:read")]


def test_merge_adds_to_the_named_grant_and_keeps_what_it_had(server, nat, banks):
    astoria, brill = banks
    app = make_app(server)
    first = consent_for(server, app, nat, "accounts:read", at=[astoria])

    merged = consent_for(server, app, nat, "balances:read", at=[brill],
                         grant_management_action="merge", grant_id=first["grant_id"])
    assert merged["grant_id"] == first["grant_id"]
    assert merged["authorization_details"] == [granted(brill, "balances:read")], \
        "the new token reaches what this consent allowed"
    grant = read_grant(app, first["grant_id"])
    assert grant["authorization_details"] == [granted(astoria, "accounts:read"),
                                              granted(brill, "balances:read")]
    assert len(grants_of(server, nat, app)) == 1


def test_replace_makes_the_grant_exactly_the_new_consent(server, nat, banks):
    astoria, brill = banks
    app = make_app(server)
    first = consent_for(server, app, nat, "accounts:read", "transactions:read")
    assert read_grant(app, first["grant_id"])["authorization_details"] == [
        granted(astoria, "accounts:read", "transactions:read"),
        granted(brill, "accounts:read", "transactions:read")]

    replaced = consent_for(server, app, nat, "balances:read", at=[brill],
                           grant_management_action="replace", grant_id=first["grant_id"])
    assert replaced["grant_id"] == first["grant_id"]
    grant = read_grant(app, first["grant_id"])
    assert grant["authorization_details"] == [granted(brill, "balances:read")]
    assert grant["scopes"] == [{"scope": "openid balances:read"}]
    assert [entry["registration_id"] for entry in grant["institutions"]] == [brill.id]
    # the token from before reaches nothing of what was replaced
    old = app.post("/introspect", {"token": first["access_token"]}).json()
    assert old["institutions"] == {} and "authorization_details" not in old


def test_the_grant_document_lists_details_and_institutions_per_institution(server, nat, banks):
    astoria, brill = banks
    app = make_app(server)
    page, verifier = ask(server, app, nat, **TRANSACTIONS_AND_ASTORIA_ACCOUNTS)
    tokens = allow(app, nat, page, verifier)

    grant = read_grant(app, tokens["grant_id"])
    assert grant["grant_id"] == tokens["grant_id"] and grant["client_id"] == app.client_id
    assert grant["authorization_details"] == [granted(astoria, "accounts:read", "transactions:read"),
                                              granted(brill, "transactions:read")]
    assert sorted(grant["institutions"], key=lambda entry: entry["name"]) == [
        {"registration_id": astoria.id, "name": "Bank of Astoria", "provider": "sandbox", "status": "ok"},
        {"registration_id": brill.id, "name": "Credit Union of Brill", "provider": "sandbox",
         "status": "ok"},
    ]


MALFORMED = {
    "merge without grant_id": {"grant_management_action": "merge"},
    "replace without grant_id": {"grant_management_action": "replace"},
    "grant_id without an action": {"grant_id": "some-grant"},
    "grant_id with create": {"grant_management_action": "create", "grant_id": "some-grant"},
    "an unknown action": {"grant_management_action": "update"},
}


@pytest.mark.parametrize("params", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_grant_management_is_an_invalid_request(server, nat, params):
    app = make_app(server)
    at_par = pushed(app, **params)
    assert at_par.status_code == 400 and at_par.json()["error"] == "invalid_request", at_par.text
    at_authorize, _ = ask(server, app, nat, scope="openid", **params)
    assert_error_redirect(at_authorize, server, "invalid_request")


def assert_unknown_grant_sent_back(server, app, agent, grant_id: str) -> None:
    """Only once the person is known can a grant id be told apart: an ``invalid_grant_id``
    redirect, whether the request came directly or pushed."""
    direct, _ = ask(server, app, agent, scope="openid", grant_management_action="merge", grant_id=grant_id)
    assert_error_redirect(direct, server, "invalid_grant_id")
    at_par = pushed(app, grant_management_action="replace", grant_id=grant_id)
    assert at_par.status_code == 201, at_par.text
    back = walk(agent, authorization_url(server, client_id=app.client_id,
                                         request_uri=at_par.json()["request_uri"]))
    assert_error_redirect(back, server, "invalid_grant_id")


@pytest.mark.parametrize("grant_id", ["no-such-grant", "x" * 101], ids=["short", "longer than any of ours"])
def test_an_unknown_grant_id_is_invalid_grant_id_whatever_its_length(server, nat, grant_id):
    assert_unknown_grant_sent_back(server, make_app(server), nat, grant_id)


def test_another_apps_grant_id_is_invalid_grant_id(server, nat, banks):
    astoria, _ = banks
    other = make_app(server, client_name="Other")
    theirs = consent_for(server, other, nat, "accounts:read", at=[astoria])
    assert_unknown_grant_sent_back(server, make_app(server), nat, theirs["grant_id"])
    unchanged = read_grant(other, theirs["grant_id"])
    assert unchanged["authorization_details"] == [granted(astoria, "accounts:read")]


def test_another_persons_grant_of_the_same_app_is_invalid_grant_id(server, nat, banks):
    app = make_app(server)
    mallory = signed_up(server, "mallory")
    hers = seed_registration(server, mallory, "Mallory Bank")
    theirs = consent_for(server, app, mallory, "accounts:read")
    assert_unknown_grant_sent_back(server, app, nat, theirs["grant_id"])
    assert read_grant(app, theirs["grant_id"])["authorization_details"] == [granted(hers, "accounts:read")]
    assert grants_of(server, nat, app) == []
