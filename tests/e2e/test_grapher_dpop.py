"""The Grapher's FAPI 2.0 mode without a browser: PAR + code + token with DPoP, userinfo with
DPoP, a refresh, server nonces (RFC 9449 §8), and what the AS's records say about its tokens.

The browser story with the AS in its FAPI 2.0 profile is in test_grapher_fapi2.py.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask
from joserfc.jwk import OKPKey

from examples.grapher import GrapherSettings, SettingsError, create_grapher_app
from examples.grapher.client import ASError, Provider
from examples.grapher.dpop import DPoPAuth, DPoPKey
from examples.grapher.visits import Connection
from tests.fixtures.aggregator import PersonAgent

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
INITIAL = "operator-initial-access-token"


def consent(person: PersonAgent, location: str) -> str:
    """The person allows at the AS; the redirect back to the Grapher (path and query)."""
    page = person.http.get(location, timeout=10)
    action = re.search(r'<form[^>]* action="([^"]+)"[^>]*>(?:(?!</form>).)*name="decision"',
                       page.text, re.S).group(1)
    back = person.http.post(urljoin(page.url, action), allow_redirects=False, timeout=10,
                            data={"csrf_token": CSRF.search(page.text).group(1), "decision": "allow"})
    callback = urlsplit(back.headers["Location"])
    return f"{callback.path}?{callback.query}"


@pytest.fixture
def nonce_as(make_as):
    """An AS that asks every DPoP proof for its server nonce."""
    return make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL, AGGREGATOR_DPOP_NONCE="true")


def connected(server, fapi2: bool = True):
    """A Grapher in FAPI 2.0 mode, connected by a person who shared nothing (no plugins here)."""
    app = create_grapher_app(GrapherSettings(port=8002, as_url=server.url, initial_access_token=INITIAL,
                                             fapi2=fapi2))
    person = PersonAgent(server.url)
    person.signup("nat")
    browser = app.test_client()
    start = browser.post("/connect", data={"csrf_token": CSRF.search(browser.get("/").text).group(1)})
    assert start.status_code == 303 and "request_uri=" in start.location
    back = consent(person, start.location)
    assert parse_qs(urlsplit(back).query)["iss"] == [server.url]
    answer = browser.get(back)
    assert answer.status_code == 303, answer.text
    return app, browser


def connection_of(app: Flask) -> Connection:
    """The Grapher's one connection (its visits are in memory: the test reads them there)."""
    visits = app.extensions["grapher"].visits._visits.values()
    return next(v.connection for v in visits if v.connection is not None)


def test_the_fapi2_grapher_gets_a_token_bound_to_its_key_through_server_nonces(nonce_as):
    app, browser = connected(nonce_as)
    connection = connection_of(app)
    key = connection.client.dpop
    assert connection.token["token_type"] == "DPoP"
    page = browser.get("/")
    assert 'id="fapi2"' in page.text and "DPoP-bound token" in page.text

    # The AS's record of the token, through introspection (private_key_jwt): bound to our key.
    answer = connection.client.introspect(connection.introspection_endpoint, connection.token["access_token"])
    assert answer["active"] is True and answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": key.jkt}
    # The AS really asks for nonces: our key's proof without one is refused with use_dpop_nonce.
    token, url = connection.token["access_token"], f"{nonce_as.url}/userinfo"
    bare = requests.get(url, timeout=10, headers={"Authorization": f"DPoP {token}",
                                                  "DPoP": DPoPKey(key.key).proof("GET", url, token)})
    assert bare.status_code == 401 and 'error="use_dpop_nonce"' in bare.headers["WWW-Authenticate"]
    assert bare.headers["DPoP-Nonce"]

    # A stolen token without the key is refused: as Bearer, and with another key's proof.
    stolen = connection.token["access_token"]
    as_bearer = requests.get(f"{nonce_as.url}/userinfo", headers={"Authorization": f"Bearer {stolen}"},
                             timeout=10)
    assert as_bearer.status_code == 401 and as_bearer.headers["WWW-Authenticate"].startswith("DPoP")
    other_key = requests.get(url, auth=DPoPAuth(DPoPKey(), access_token=stolen), timeout=10)
    assert other_key.status_code == 401
    assert 'error="invalid_dpop_proof"' in other_key.headers["WWW-Authenticate"]
    assert len(other_key.history) == 1  # the thief's proof got the nonce, and still failed

    # Refresh (with a proof, through the nonce again): the new access token is bound to the same key.
    connection.token["expires_at"] = 0
    assert "DPoP-bound token" in browser.get("/").text
    assert connection.token["access_token"] != stolen and connection.token["token_type"] == "DPoP"
    assert connection.client.userinfo(connection.token["access_token"], connection.subject)["sub"]


def test_the_fapi2_grapher_registers_as_a_fapi2_client(make_as):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL)
    app, _ = connected(server)
    client_id = connection_of(app).client.client_id
    record = server.services.store.clients.get(client_id)
    assert record.token_endpoint_auth_method == "private_key_jwt"
    assert record.dpop_bound_access_tokens is True
    assert record.require_pushed_authorization_requests is True
    assert record.id_token_signed_response_alg in ("PS256", "ES256")
    assert record.jwks and all("d" not in key for key in record.jwks["keys"])


def test_the_default_grapher_still_gets_bearer_tokens(make_as):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL)
    app, browser = connected(server, fapi2=False)
    connection = connection_of(app)
    assert connection.client.dpop is None and connection.token["token_type"] == "Bearer"
    assert 'id="fapi2"' not in browser.get("/").text
    record = server.services.store.clients.get(connection.client.client_id)
    assert record.dpop_bound_access_tokens is False


def test_fapi2_mode_refuses_an_as_without_par(make_as):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL)
    app = create_grapher_app(GrapherSettings(port=8002, as_url=server.url, initial_access_token=INITIAL,
                                             fapi2=True))
    client = app.extensions["grapher"].clients
    provider = client.discover(server.url)
    metadata = {k: v for k, v in provider.metadata.items() if k != "pushed_authorization_request_endpoint"}
    without_par = Provider(provider.issuer, metadata)
    with pytest.raises(ASError, match="FAPI 2.0 requires"):
        client.client_for(without_par).authorization_url("state", "nonce", "v" * 43)


def test_fapi2_mode_turns_on_at_an_as_that_requires_par(make_as):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL)
    clients = create_grapher_app(GrapherSettings(port=8002, as_url=server.url)).extensions["grapher"].clients
    provider = clients.discover(server.url)

    def requiring_par(required: bool) -> Provider:
        metadata = {**provider.metadata, "require_pushed_authorization_requests": required}
        return Provider(provider.issuer, metadata)

    assert clients.fapi2_at(requiring_par(True)) and not clients.fapi2_at(requiring_par(False))


def test_fapi2_mode_is_a_setting_and_needs_a_fapi2_client_key(make_as):
    assert GrapherSettings.from_env({"GRAPHER_FAPI2": "true"}).fapi2 is True
    assert GrapherSettings.from_env({}).fapi2 is False
    with pytest.raises(SettingsError, match="GRAPHER_FAPI2"):
        GrapherSettings.from_env({"GRAPHER_FAPI2": "maybe"})

    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL)
    eddsa = OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
    clients = create_grapher_app(GrapherSettings(
        port=8002, as_url=server.url, client_id="configured", fapi2=True,
        private_jwks={"keys": [eddsa.as_dict(private=True)]})).extensions["grapher"].clients
    with pytest.raises(ASError, match="FAPI 2.0 needs a PS256 or ES256 client key, not EdDSA"):
        clients.client_for(clients.discover(server.url))
