"""What the AS fetches on a client's behalf: its ``jwks_uri``, within a deadline, a size cap and
the production address rules, at most once per interval whatever anyone sends."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests

from aggregator.crypto import KeyRing
from aggregator.oauth.client_jwks import cache_ttl
from aggregator.outbound import OutboundPolicy, OutboundSession, OutboundTimeout, OutboundTooLarge
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, make_app, new_key, register
from tests.oauth.jwks_servers import drip_server, jwks_server, keys_answer

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def app_with_jwks_uri(server, uri, key):
    app = make_app(server, token_endpoint_auth_method="private_key_jwt", jwks_uri=uri,
                   grant_types=["client_credentials"], response_types=[], redirect_uris=[])
    app.key = key
    return app


def token_with(app, assertion: str, timeout: float = 10) -> requests.Response:
    return requests.post(f"{app.server.url}/token", timeout=timeout, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION,
        "client_assertion": assertion})


def unsigned(app) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"iss": app.client_id, "sub": app.client_id, "aud": app.server.url, "exp": now + 60,
              "jti": str(now)}
    return f'{part({"alg": "none"})}.{part(claims)}.'


# ---------------------------------------------------------------- the client itself

def test_a_dripping_server_is_cut_off_at_the_deadline():
    """One byte every 0.5 s for 50 s: the fetch gives up at its 1 s deadline, not after the drip."""
    with drip_server(0.5) as dripping:
        started = time.monotonic()
        with pytest.raises(OutboundTimeout):
            OutboundSession(OutboundPolicy(), 1.0).get(dripping.url)
        assert time.monotonic() - started < 1.5


def test_bodies_past_the_cap_and_redirects_are_refused():
    with jwks_server(lambda path: ("200 OK", [], b"x" * 5000)) as big, pytest.raises(OutboundTooLarge):
        OutboundSession(OutboundPolicy(), 5, max_body=4096).get(big.url)
    with jwks_server(lambda path: ("302 Found", [("Location", "/elsewhere")], b"")) as moving:
        assert OutboundSession(OutboundPolicy(), 5).get(moving.url).status_code == 302
        assert moving.hits == ["/jwks"]


def test_max_age_is_respected_within_bounds():
    assert cache_ttl("") == 300
    assert cache_ttl("public, max-age=600") == 600
    assert cache_ttl("max-age=5") == 60
    assert cache_ttl('max-age="86400"') == 3600
    assert cache_ttl("no-store") == 300


# ---------------------------------------------------------------- through the AS

def test_an_unsigned_assertion_never_makes_the_as_fetch(server):
    with jwks_server(keys_answer(new_key("EC"))) as published:
        app = app_with_jwks_uri(server, published.url, new_key("EC"))
        for _ in range(10):
            answer = token_with(app, unsigned(app))
            assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
        garbage = requests.get(f"{server.url}/authorize", timeout=10, allow_redirects=False,
                               params={"client_id": app.client_id, "request": "garbage"})
        assert garbage.status_code in (302, 400)
        assert published.hits == []


def test_wrong_keys_make_one_fetch_however_many_requests(server):
    """Assertions signed by keys the client never published: the first request fetches, the
    unknown kid does not refetch keys that young, and the rest use the cache."""
    with jwks_server(keys_answer(new_key("EC"))) as published:
        app = app_with_jwks_uri(server, published.url, new_key("EC"))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: token_with(app, app.assertion()), range(30)))
        assert {answer.status_code for answer in answers} == {401}
        assert published.hits == ["/jwks"]


def test_the_right_key_works_and_is_fetched_once(server):
    key = new_key("EC")
    with jwks_server(keys_answer(key)) as published:
        app = app_with_jwks_uri(server, published.url, key)
        for _ in range(5):
            assert token_with(app, app.assertion()).status_code == 200
        assert published.hits == ["/jwks"]


def test_a_failing_jwks_uri_is_fetched_once_and_its_answer_never_echoed(server):
    secret_body = b"internal admin console, build 7f3e"
    with jwks_server(lambda path: ("404 Not Found", [("X-Internal", "yes")], secret_body)) as failing:
        app = app_with_jwks_uri(server, failing.url, new_key("EC"))
        for _ in range(10):
            answer = token_with(app, app.assertion())
            assert answer.status_code == 401
            description = answer.json()["error_description"]
            assert "could not be fetched" in description
            assert "404" not in description and "admin" not in description and "127.0.0.1" not in description
        assert failing.hits == ["/jwks"]
    # a redirect is a failure too: never followed
    with jwks_server(lambda path: ("302 Found", [("Location", "/moved")], b"")) as moving:
        app = app_with_jwks_uri(server, moving.url, new_key("EC"))
        assert "could not be fetched" in token_with(app, app.assertion()).json()["error_description"]
        assert moving.hits == ["/jwks"]


def test_too_large_a_key_set_is_not_fetched(server):
    with jwks_server(lambda path: ("200 OK", [], b" " * 100_000)) as huge:
        app = app_with_jwks_uri(server, huge.url, new_key("EC"))
        assert "could not be fetched" in token_with(app, app.assertion()).json()["error_description"]


def test_a_fetch_in_flight_does_not_hold_other_requests(make_as):
    """While one request waits on a slow jwks_uri, the others answer "try again" at once, and
    after the deadline the failure is remembered: one connection to the slow server in all."""
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN,
                     AGGREGATOR_UPSTREAM_TIMEOUT="2")
    with drip_server(0.5) as slow:
        app = app_with_jwks_uri(server, slow.url, new_key("EC"))
        first: list[requests.Response] = []
        fetching = threading.Thread(target=lambda: first.append(token_with(app, app.assertion())))
        fetching.start()
        time.sleep(0.5)
        started = time.monotonic()
        waiting = token_with(app, app.assertion())
        assert time.monotonic() - started < 1
        assert waiting.status_code == 401 and "try again" in waiting.json()["error_description"]
        fetching.join(timeout=10)
        assert first[0].status_code == 401
        later = token_with(app, app.assertion())
        assert "could not be fetched" in later.json()["error_description"]
        assert slow.hits == ["/jwks"]


# ---------------------------------------------------------------- registration in production

@pytest.fixture
def production_as(make_as):
    def start(**env: str):
        return make_as(AGGREGATOR_MODE="production", AGGREGATOR_ENCRYPTION_KEYS=KeyRing.new_key_item(),
                       AGGREGATOR_PASSWORD_HASHING="argon2id",
                       AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN, **env)
    return start


@pytest.mark.parametrize("uri", [
    "http://jwks.example/keys",  # not https
    "https://127.0.0.1/jwks", "https://[::1]/jwks", "https://localhost/jwks",  # resolves to loopback
    "https://10.0.0.7/jwks", "https://192.168.1.1/jwks", "https://100.64.0.1/jwks",
    "https://169.254.169.254/latest/meta-data", "https://[fd00:ec2::254]/jwks",
    "https://[::ffff:10.0.0.7]/jwks",
])
def test_production_registration_refuses_a_jwks_uri_it_would_not_fetch(production_as, uri):
    server = production_as()
    answer = register(server, token_endpoint_auth_method="private_key_jwt", jwks_uri=uri,
                      grant_types=["client_credentials"], response_types=[])
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_client_metadata"
    assert "jwks_uri" in answer.json()["error_description"]


def test_production_registers_an_allowed_private_host(production_as):
    server = production_as(AGGREGATOR_OUTBOUND_ALLOWED_HOSTS="localhost")
    answer = register(server, token_endpoint_auth_method="private_key_jwt",
                      jwks_uri="https://localhost/jwks", grant_types=["client_credentials"],
                      response_types=[])
    assert answer.status_code == 201, answer.text


def test_production_checks_the_address_when_connecting_not_only_at_registration(production_as):
    """A name that passed registration may resolve elsewhere later (DNS rebinding): the AS
    checks the address it connects to. Here the stored jwks_uri names localhost, as if DNS had
    changed: the AS refuses before connecting, and the listener never sees a connection."""
    server = production_as()
    app = make_app(server, key=new_key("EC"), grant_types=["client_credentials"], response_types=[],
                   redirect_uris=[])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        clients = server.services.store.clients
        rebound = f"https://localhost:{listener.getsockname()[1]}/jwks"
        clients.save(replace(clients.get(app.client_id), jwks=None, jwks_uri=rebound))
        answer = token_with(app, app.assertion())
        assert answer.status_code == 401 and "could not be fetched" in answer.json()["error_description"]
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # no connection was ever made to it
            listener.accept()
