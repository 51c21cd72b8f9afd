"""The Grapher's own behaviour: its pages, its guards, and reading real institution APIs.

The whole story against a running AS is in test_story.py; these need no AS.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import redis
import requests
from flask import render_template

from examples.grapher import GrapherSettings, SettingsError, create_grapher_app
from examples.grapher.banks import InstitutionData, fetch_all
from examples.grapher.finances import summarize
from examples.grapher.keys import ClientKey
from tests.fixtures.aggregator import PersonAgent
from tests.sandbox.flows import connect

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def grapher():
    return create_grapher_app(GrapherSettings(port=8002, as_url="http://127.0.0.1:8000"))


def test_home_page_has_the_as_button_with_the_preset_address(grapher):
    page = grapher.test_client().get("/")
    assert page.status_code == 200
    assert "Connect my Authorization Server" in page.text
    assert 'value="http://127.0.0.1:8000"' in page.text
    assert "script-src" not in page.headers["Content-Security-Policy"]  # no script at all
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in page.text


def test_the_cookie_holds_only_a_visit_id(grapher):
    client = grapher.test_client()
    client.get("/")
    cookie = client.get_cookie("grapher_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    data = grapher.session_interface.get_signing_serializer(grapher).loads(cookie.value)
    assert list(data) == ["visit"]


def test_connect_without_the_form_token_is_refused(grapher):
    answer = grapher.test_client().post("/connect", data={"as_url": "http://127.0.0.1:8000"})
    assert answer.status_code == 400
    assert "expired" in answer.text


def test_connect_to_an_address_that_is_not_an_as_explains(grapher):
    client = grapher.test_client()
    token = CSRF.search(client.get("/").text).group(1)
    answer = client.post("/connect", data={"as_url": "ftp://bank.example", "csrf_token": token})
    assert answer.status_code == 400
    assert "Type your Authorization Server" in answer.text


def test_connect_to_a_server_without_discovery_explains(grapher, sandbox_bank):
    client = grapher.test_client()
    token = CSRF.search(client.get("/").text).group(1)
    answer = client.post("/connect", data={"as_url": sandbox_bank.url, "csrf_token": token})
    assert answer.status_code == 400
    assert "does not look like an Authorization Server" in answer.text


def test_a_callback_the_grapher_did_not_ask_for_is_refused(grapher):
    answer = grapher.test_client().get("/callback?code=stolen&state=guessed")
    assert answer.status_code == 400
    assert "does not match a request made from this browser" in answer.text


def test_the_grapher_reads_every_institution_it_is_handed(sandbox_bank):
    """Introspection-shaped entries with real sandbox tokens: data from both, the others explained."""
    institutions = {}
    for slug, name in (("astoria", "Bank of Astoria"), ("monami", "Monami Card")):
        _, token = connect(sandbox_bank, slug, username="nat")
        institutions[name] = {"endpoint": token["endpoint"], "access_token": token["access_token"],
                              "token_type": "Bearer", "status": "ok"}
    institutions["Norma Securities"] = {"endpoint": f"{sandbox_bank.url}/norma/users/1", "status": "expired",
                                        "error": "The person must reconnect Norma Securities."}
    institutions["Lastish Fundco"] = {"endpoint": f"{sandbox_bank.url}/lastish/users/1", "status": "ok",
                                      "access_token": "not-a-real-token", "token_type": "Bearer"}
    data = fetch_all(institutions, requests.Session(), timeout=10)
    by_name = {item.name: item for item in data}
    assert [item.name for item in data] == sorted(institutions)
    assert by_name["Bank of Astoria"].ok and len(by_name["Bank of Astoria"].accounts) == 3
    assert by_name["Monami Card"].ok and by_name["Monami Card"].transactions
    assert by_name["Norma Securities"].needs_person
    assert by_name["Lastish Fundco"].status == "unavailable"
    assert "did not accept the token (HTTP 401" in by_name["Lastish Fundco"].message

    finances = summarize(data, datetime.now(UTC).date())
    assert [b.name for b in finances.balances] == ["Bank of Astoria", "Monami Card"]
    assert all(sum(values) > 0 for values in finances.spending.series.values())


def test_an_institution_that_needs_the_person_links_to_the_as(grapher):
    data = [InstitutionData("Monami Card", "reauth_required", "Monami asks you to sign in again.")]
    finances = summarize(data, datetime.now(UTC).date())
    with grapher.test_request_context("/"):
        grapher.preprocess_request()
        page = render_template("finances.html", connection=SimpleNamespace(issuer="http://as.test"),
                               finances=finances, palette={}, balance_chart="", spending_chart="",
                               notice=None)
    assert "reauth required" in page
    assert "Monami asks you to sign in again." in page
    assert 'href="http://as.test/connections"' in page


def test_settings_come_from_the_environment(tmp_path):
    jwks = {"keys": [ClientKey.generate().key.as_dict(private=True)]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    settings = GrapherSettings.from_env({
        "GRAPHER_PORT": "8100", "GRAPHER_AS_URL": "http://127.0.0.1:8000/",
        "GRAPHER_CLIENT_ID": "grapher", "GRAPHER_PRIVATE_JWKS": f"@{tmp_path / 'jwks.json'}",
    })
    assert settings.redirect_uri == "http://127.0.0.1:8100/callback"
    assert settings.as_url == "http://127.0.0.1:8000"
    key = ClientKey.from_jwks(settings.private_jwks)
    assert key.alg == "ES256" and "d" not in key.public_jwks()["keys"][0]

    for bad in ({"GRAPHER_PORT": "eighty"}, {"GRAPHER_CLIENT_ID": "grapher"},
                {"GRAPHER_AS_URL": "as.example"}, {"GRAPHER_PRIVATE_JWKS": "{not json"}):
        with pytest.raises(SettingsError):
            GrapherSettings.from_env(bad)


def test_a_grapher_registered_beforehand_uses_its_configured_client(make_as):
    """GRAPHER_CLIENT_ID + GRAPHER_PRIVATE_JWKS: no self-registration, the same flow, the same end."""
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN="operator-initial-access-token")
    key = ClientKey.generate()
    registered = requests.post(
        f"{server.url}/register", timeout=10,
        headers={"Authorization": "Bearer operator-initial-access-token"},
        json={"client_name": "Grapher", "redirect_uris": ["http://127.0.0.1:8002/callback"],
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
              "token_endpoint_auth_method": "private_key_jwt", "jwks": key.public_jwks()},
    )
    assert registered.status_code == 201, registered.text
    grapher = create_grapher_app(GrapherSettings(
        port=8002, as_url=server.url, client_id=registered.json()["client_id"],
        private_jwks={"keys": [key.key.as_dict(private=True)]},
    ))  # and no initial access token: it could not register itself
    person = PersonAgent(server.url)
    person.signup("nat")
    browser = grapher.test_client()

    start = browser.post("/connect", data={"csrf_token": CSRF.search(browser.get("/").text).group(1)})
    assert start.status_code == 303 and "request_uri=" in start.location
    consent = person.http.get(start.location, timeout=10)
    assert "Allow" in consent.text and "Grapher" in consent.text
    action = re.search(r'<form[^>]* action="([^"]+)"[^>]*>(?:(?!</form>).)*name="decision"',
                       consent.text, re.S).group(1)
    back = person.http.post(urljoin(consent.url, action), allow_redirects=False, timeout=10,
                            data={"csrf_token": CSRF.search(consent.text).group(1), "decision": "allow"})
    assert back.headers["Location"].startswith("http://127.0.0.1:8002/callback?")
    callback = urlsplit(back.headers["Location"])
    assert browser.get(f"{callback.path}?{callback.query}").status_code == 303
    page = browser.get("/")
    assert "Your finances" in page.text and "shared no institution" in page.text

    dashboard = person.http.get(f"{server.url}/", timeout=10).text
    revoke = re.search(r'action="(/apps/[^"]+/revoke)"', dashboard).group(1)
    person.http.post(f"{server.url}{revoke}", data={"csrf_token": CSRF.search(dashboard).group(1)},
                     timeout=10)
    assert "Your Authorization Server says access has ended" in browser.get("/").text


def test_the_grapher_registers_again_when_the_as_forgot_it(make_as, redis_url):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN="operator-initial-access-token")
    grapher = create_grapher_app(GrapherSettings(port=8002, as_url=server.url,
                                                 initial_access_token="operator-initial-access-token"))
    browser = grapher.test_client()
    token = CSRF.search(browser.get("/").text).group(1)
    first = browser.post("/connect", data={"csrf_token": token})
    assert first.status_code == 303
    redis.Redis.from_url(redis_url).flushall()  # the AS's data is gone, our client with it

    again = browser.post("/connect", data={"csrf_token": token})
    assert again.status_code == 303, again.text
    client_ids = [parse_qs(urlsplit(answer.location).query)["client_id"][0] for answer in (first, again)]
    assert client_ids[0] != client_ids[1]
