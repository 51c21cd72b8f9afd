"""Ending access: revocation (RFC 7009), grant management by the app, and the person's dashboard."""

from __future__ import annotations

import html
import re

import requests

from tests.oauth.apps import (
    DATA,
    code_flow,
    exchange,
    make_app,
    new_key,
    person_id_of,
    seed_registration,
    signed_up,
)


def tokens_for(server, app, agent, scope=f"openid offline_access {DATA}"):
    params, verifier = code_flow(server, app, agent, scope=scope)
    response = exchange(app, params["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_app_revokes_its_own_tokens_only(server, nat):
    app = make_app(server)
    other = make_app(server)
    tokens = tokens_for(server, app, nat)
    store = server.services.store.tokens

    refused = other.post("/revoke", {"token": tokens["access_token"]})
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert store.find_access_token(tokens["access_token"]) is not None

    assert app.post("/revoke", {"token": tokens["access_token"],
                                "token_type_hint": "access_token"}).status_code == 200
    assert store.find_access_token(tokens["access_token"]) is None
    assert store.find_refresh_token(tokens["refresh_token"]) is not None
    # a wrong hint still finds the token (RFC 7009 §2.1), and unknown tokens answer 200 (§2.2)
    assert app.post("/revoke", {"token": tokens["refresh_token"],
                                "token_type_hint": "access_token"}).status_code == 200
    assert store.find_refresh_token(tokens["refresh_token"]) is None
    assert app.post("/revoke", {"token": "never-issued"}).status_code == 200
    missing = app.post("/revoke", {})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_an_app_reads_and_deletes_its_grant(server, nat):
    astoria = seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server)
    tokens = tokens_for(server, app, nat)
    grant_url = f"/grants/{tokens['grant_id']}"

    read = requests.get(f"{server.url}{grant_url}", auth=(app.client_id, app.secret), timeout=10)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["grant_id"] == tokens["grant_id"]
    assert set(body["scopes"][0]["scope"].split()) == {"openid", "offline_access", *DATA.split()}
    assert body["institutions"] == [{"registration_id": astoria.id, "name": "Bank of Astoria",
                                     "provider": "sandbox", "status": "ok"}]

    other = make_app(server)
    foreign = requests.get(f"{server.url}{grant_url}", auth=(other.client_id, other.secret), timeout=10)
    assert foreign.status_code == 404 and foreign.json()["error"] == "invalid_grant_id"
    anonymous = requests.get(f"{server.url}{grant_url}", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"

    deleted = requests.delete(f"{server.url}{grant_url}", auth=(app.client_id, app.secret), timeout=10)
    assert deleted.status_code == 204
    store = server.services.store.tokens
    assert store.find_access_token(tokens["access_token"]) is None
    assert store.find_refresh_token(tokens["refresh_token"]) is None
    again = requests.get(f"{server.url}{grant_url}", auth=(app.client_id, app.secret), timeout=10)
    assert again.status_code == 404


def test_the_person_sees_the_app_on_the_dashboard_and_revokes_it(server, nat):
    seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server, client_name="Grapher")
    tokens = tokens_for(server, app, nat)
    dashboard = nat.http.get(nat.url("/"))
    assert "Grapher" in dashboard.text and "Bank of Astoria" in dashboard.text
    action = re.search(r'<form method="post" action="(/apps/[^"]+/revoke)"', dashboard.text)
    assert action, dashboard.text
    path = html.unescape(action.group(1))

    forged = nat.http.post(nat.url(path), data={}, allow_redirects=False)
    assert forged.status_code == 400, "the revoke form is CSRF-protected"
    assert server.services.store.grants.get(tokens["grant_id"]) is not None

    revoked = nat.post_form(path, {}, form_page="/")
    assert revoked.status_code == 303
    assert server.services.store.grants.get(tokens["grant_id"]) is None
    store = server.services.store.tokens
    assert store.find_access_token(tokens["access_token"]) is None, "inactive at once"
    assert store.find_refresh_token(tokens["refresh_token"]) is None
    refresh = app.post("/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    after = nat.http.get(nat.url("/")).text
    assert "Grapher no longer has access to your data." in after
    assert "No app has access to your data." in after


def test_a_person_cannot_revoke_someone_elses_grant(server, nat):
    app = make_app(server)
    tokens = tokens_for(server, app, nat, scope="openid")
    mallory = signed_up(server, "mallory")
    response = mallory.post_form(f"/apps/{tokens['grant_id']}/revoke", {}, form_page="/")
    assert response.status_code == 404
    assert server.services.store.grants.get(tokens["grant_id"]) is not None
    assert person_id_of(server, nat) == server.services.store.grants.get(tokens["grant_id"]).person_id


def test_deleting_an_app_ends_its_grants_and_tokens(server, nat):
    app = make_app(server)
    tokens = tokens_for(server, app, nat)
    uri = app.info["registration_client_uri"]
    bearer = {"Authorization": f"Bearer {app.info['registration_access_token']}"}
    deleted = requests.delete(uri, headers=bearer, timeout=10)
    assert deleted.status_code == 204
    assert server.services.store.grants.get(tokens["grant_id"]) is None
    assert server.services.store.tokens.find_access_token(tokens["access_token"]) is None


def test_userinfo_needs_a_bearer_token_with_openid(server, nat):
    app = make_app(server, grant_types=["authorization_code", "client_credentials"])
    tokens = tokens_for(server, app, nat, scope="openid accounts:read")
    ok = requests.get(f"{server.url}/userinfo", timeout=10,
                      headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert ok.status_code == 200 and set(ok.json()) == {"sub"}
    posted = requests.post(f"{server.url}/userinfo", data={"access_token": tokens["access_token"]},
                           timeout=10)
    assert posted.status_code == 200

    missing = requests.get(f"{server.url}/userinfo", timeout=10)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="aggregator"'
    wrong = requests.get(f"{server.url}/userinfo", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]

    data_only = tokens_for(server, app, nat, scope="accounts:read")
    narrow = requests.get(f"{server.url}/userinfo", timeout=10,
                          headers={"Authorization": f"Bearer {data_only['access_token']}"})
    assert narrow.status_code == 403 and narrow.json()["error"] == "insufficient_scope"
    machine = app.post("/token", {"grant_type": "client_credentials", "scope": "accounts:read"}).json()
    no_person = requests.get(f"{server.url}/userinfo", timeout=10,
                             headers={"Authorization": f"Bearer {machine['access_token']}"})
    assert no_person.status_code == 403


def test_grant_management_with_a_client_assertion_in_the_body(server, nat):
    app = make_app(server, key=new_key("EC"))
    tokens = tokens_for(server, app, nat, scope="openid")
    url = f"{server.url}/grants/{tokens['grant_id']}"
    read = requests.get(url, data=app.auth()["data"], timeout=10)
    assert read.status_code == 200, read.text
    assert requests.delete(url, data=app.auth()["data"], timeout=10).status_code == 204
