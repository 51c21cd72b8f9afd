"""The grant is (institution, scopes) pairs: an app sees exactly what the person ticked.

Nat has Bank of Astoria and Monami Card at the sandbox bank. The Grapher (Authlib's OAuth
client) asks for accounts and transactions and Nat shares Astoria only; later it asks for
balances and Nat shares both. Monami's transactions must stay out of the Grapher's reach.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.introspection.test_story import introspect, nat_with_two_banks
from tests.introspection.test_story import server as server  # noqa: F401  (the fixture)
from tests.oauth.apps import REDIRECT, App, consent_form, decide, id_token_claims, make_app, walk

FIRST = "openid offline_access accounts:read transactions:read"


@pytest.fixture
def nat(server, sandbox_bank) -> PersonAgent:
    return nat_with_two_banks(server, sandbox_bank)


def grapher_client(app: App, scope: str) -> OAuth2Session:
    return OAuth2Session(app.client_id, app.secret, scope=scope, redirect_uri=REDIRECT,
                         code_challenge_method="S256")


def authorize(server: LiveAS, client: OAuth2Session, **extra: str) -> tuple[str, str]:
    """The authorization URL Authlib builds, and its PKCE verifier."""
    verifier = generate_token(64)
    url, _ = client.create_authorization_url(f"{server.url}/authorize", code_verifier=verifier,
                                             **extra)
    return url, verifier


def registration_ids(server: LiveAS) -> dict[str, str]:
    records = server.services.store.registrations.list(
        server.services.store.people.find_by_username("nat").id)
    return {record.institution_name: record.id for record in records}


def bank_call(entry: dict, path: str) -> int:
    return requests.get(f"{entry['endpoint']}{path}", timeout=10,
                        headers={"Authorization": f"Bearer {entry['access_token']}"}).status_code


def test_scopes_granted_for_one_institution_never_spread_to_another(server, nat):
    ids = registration_ids(server)
    app = make_app(server)

    # 1. accounts + transactions: Nat shares Bank of Astoria only
    first = grapher_client(app, FIRST)
    url, verifier = authorize(server, first)
    page = walk(nat, url)
    answer = decide(nat, page, registrations=[ids["Bank of Astoria"]])
    tokens = first.fetch_token(f"{server.url}/token", authorization_response=answer.headers["Location"],
                               code_verifier=verifier)
    assert [(d["name"], d["actions"]) for d in tokens["authorization_details"]] == [
        ("Bank of Astoria", ["accounts:read", "transactions:read"])]

    # 2. balances only: the page says what is already shared and ticks nothing new for Nat
    second = grapher_client(app, "openid balances:read")
    url, verifier = authorize(server, second)
    page = walk(nat, url)
    text = html.unescape(page.text)
    assert "Already shared with Grapher" in text
    assert "See your account balances" in text
    _, _, ticked = consent_form(page)
    assert ticked == [], "Astoria is shared for other data; Monami not at all: nothing is pre-ticked"
    answer = decide(nat, page, registrations=[ids["Bank of Astoria"], ids["Monami Card"]])
    balances = second.fetch_token(f"{server.url}/token",
                                  authorization_response=answer.headers["Location"],
                                  code_verifier=verifier)
    body = introspect(App(server, app.info), balances["introspection_endpoint"],
                      balances["access_token"])
    assert {d["name"]: d["actions"] for d in body["authorization_details"]} == {
        "Bank of Astoria": ["balances:read"], "Monami Card": ["balances:read"]}
    monami = body["institutions"]["Monami Card"]
    assert bank_call(monami, "/transactions") == 403, "a balances token cannot read transactions"

    # 3. the refresh token from step 1 still reaches exactly what step 1 granted
    refreshed = first.refresh_token(f"{server.url}/token", refresh_token=tokens["refresh_token"])
    body = introspect(App(server, app.info), refreshed["introspection_endpoint"],
                      refreshed["access_token"])
    assert list(body["institutions"]) == ["Bank of Astoria"], "no Monami token is released"
    assert bank_call(body["institutions"]["Bank of Astoria"], "/transactions") == 200
    assert [d["name"] for d in refreshed["authorization_details"]] == ["Bank of Astoria"]

    # 4. asking again for accounts + transactions is not approved silently: Monami is shared
    #    with the Grapher, but never for these
    again = grapher_client(app, FIRST)
    url, _ = authorize(server, again, prompt="none")
    denied = walk(nat, url)
    assert dict(parse_qsl(urlsplit(denied.headers["Location"]).query))["error"] == "consent_required"
    url, _ = authorize(server, again)
    page = walk(nat, url)
    assert page.status_code == 200 and 'name="decision" value="allow"' in page.text
    _, _, ticked = consent_form(page)
    assert ticked == [ids["Bank of Astoria"]], "only what is already shared for these is ticked"


def test_a_covered_request_is_approved_without_a_page_and_reaches_only_its_pairs(server, nat):
    ids = registration_ids(server)
    app = make_app(server)
    client = grapher_client(app, FIRST)
    url, verifier = authorize(server, client)
    decide(nat, walk(nat, url), registrations=[ids["Bank of Astoria"]])

    narrower = grapher_client(app, "openid accounts:read")
    url, verifier = authorize(server, narrower, prompt="none")
    answer = walk(nat, url)
    tokens = narrower.fetch_token(f"{server.url}/token", authorization_response=answer.headers["Location"],
                                  code_verifier=verifier)
    assert [(d["name"], d["actions"]) for d in tokens["authorization_details"]] == [
        ("Bank of Astoria", ["accounts:read"])]


def test_the_username_is_released_only_after_a_page_named_it(server, nat):
    app = make_app(server)
    client = grapher_client(app, "openid")
    url, verifier = authorize(server, client)
    answer = decide(nat, walk(nat, url))
    first = client.fetch_token(f"{server.url}/token", authorization_response=answer.headers["Location"],
                               code_verifier=verifier)
    claims_request = '{"id_token": {"preferred_username": null}, "userinfo": {"preferred_username": null}}'

    # the person allowed "openid" only: a silent request for the username is refused
    url, verifier = authorize(server, client, prompt="none", claims=claims_request)
    refused = walk(nat, url)
    assert dict(parse_qsl(urlsplit(refused.headers["Location"]).query))["error"] == "consent_required"
    client.token = first
    assert "preferred_username" not in client.get(f"{server.url}/userinfo").json()

    # the page names it; once allowed, the ID token and userinfo carry it
    url, verifier = authorize(server, client, claims=claims_request)
    page = walk(nat, url)
    assert "Your username here" in html.unescape(page.text)
    answer = decide(nat, page)
    named = client.fetch_token(f"{server.url}/token", authorization_response=answer.headers["Location"],
                               code_verifier=verifier)
    assert client.get(f"{server.url}/userinfo").json()["preferred_username"] == "nat"
    assert id_token_claims(server, named["id_token"])["preferred_username"] == "nat"


def dashboard_form(agent: PersonAgent, app_name: str) -> tuple[str, list[str]]:
    """(action, ticked ``keep`` values) of the dashboard's form for one app."""
    page = agent.http.get(agent.url("/"))
    section = page.text.split(f"<strong>{app_name}</strong>", 1)[1].split("</li>", 1)[0]
    action = re.search(r'<form method="post" action="([^"]+/edit)"', section)
    assert action, section
    return action.group(1), re.findall(r'name="keep" value="([^"]+)" checked', section)


def test_the_person_narrows_what_an_app_reads_from_the_dashboard(server, nat):
    ids = registration_ids(server)
    app = make_app(server)
    client = grapher_client(app, FIRST)
    url, verifier = authorize(server, client)
    answer = decide(nat, walk(nat, url))  # first consent: both institutions ticked
    tokens = client.fetch_token(f"{server.url}/token", authorization_response=answer.headers["Location"],
                                code_verifier=verifier)
    grapher = App(server, app.info)
    assert set(introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
               ["institutions"]) == {"Bank of Astoria", "Monami Card"}

    action, kept = dashboard_form(nat, "Grapher")
    assert sorted(kept) == sorted(f"{rid} {scope}" for rid in ids.values()
                                  for scope in ("accounts:read", "transactions:read"))
    # untick Monami altogether, and transactions at Astoria
    keep = [f"{ids['Bank of Astoria']} accounts:read"]
    edited = nat.post_form(action, {"keep": keep}, form_page="/")
    assert edited.status_code == 303

    # the very next introspection of the same token sees it: no new token needed
    body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
    assert list(body["institutions"]) == ["Bank of Astoria"]
    assert body["authorization_details"][0]["actions"] == ["accounts:read"]
    # and the audit trail says so, in words
    dashboard = html.unescape(nat.http.get(nat.url("/")).text)
    assert "You changed what Grapher can read (Bank of Astoria: see your transactions: amounts, " \
           "dates and descriptions; Monami Card: everything)" in dashboard

    # nothing can be added back through the form, nor reach another person's grant
    widened = nat.post_form(action, {"keep": keep + [f"{ids['Monami Card']} accounts:read"]},
                            form_page="/")
    assert widened.status_code == 400
    mallory = PersonAgent(server.url)
    mallory.signup("mallory")
    assert mallory.post_form(action, {"keep": keep}, form_page="/").status_code == 404
