"""Bad input of every kind gets a clear 4xx, never a 500, and changes nothing."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.aggregator import PersonAgent


@pytest.fixture
def server(make_as):
    return make_as(AGGREGATOR_MAX_BODY_BYTES="4096")


def test_unknown_routes_are_404_json_for_apis_and_a_page_for_browsers(server):
    api = requests.get(server.url + "/no/such/thing", headers={"Accept": "application/json"})
    assert api.status_code == 404
    assert api.json()["error"] == "not_found"
    page = requests.get(server.url + "/no/such/thing", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "Not found" in page.text


def test_wrong_method_is_405_with_allow(server):
    response = requests.delete(server.url + "/signup")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_wrong_content_type_on_a_form_is_415(server):
    agent = PersonAgent(server.url)
    token = agent.csrf("/signup")
    response = agent.http.post(server.url + "/signup", data=b"\x00\x01binary",
                               headers={"Content-Type": "application/octet-stream",
                                        "X-CSRF-Token": token})
    assert response.status_code == 415


def test_json_to_a_form_is_refused(server):
    response = requests.post(server.url + "/login", json={"username": "a", "password": "b"})
    assert response.status_code in (400, 415)
    assert response.json()["error"] == "invalid_request"


def test_oversized_bodies_are_413(server):
    agent = PersonAgent(server.url)
    token = agent.csrf("/signup")
    response = agent.http.post(server.url + "/signup",
                               data={"username": "big", "password": "p" * 10_000, "csrf_token": token})
    assert response.status_code == 413
    assert server.services.store.people.find_by_username("big") is None


@pytest.mark.parametrize(
    "body",
    [
        "username=%ZZ&password=%",                  # broken percent-encoding
        "username&password",                          # keys without values
        "username=a&username=b&password=cccccccccccc",  # repeated fields
        "=" * 50,
        "username=" + "é" * 10 + "&password=" + "x" * 20,
    ],
)
def test_malformed_forms_never_500(server, body):
    agent = PersonAgent(server.url)
    token = agent.csrf("/signup")
    for path in ("/signup", "/login"):
        response = agent.http.post(server.url + path, data=f"{body}&csrf_token={token}",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert 400 <= response.status_code < 500, (path, response.status_code)


def test_garbage_cookies_and_headers_are_ignored(server):
    response = requests.get(server.url + "/login",
                            cookies={"aggregator_session": "x" * 500},
                            headers={"X-Request-Id": "<script>"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] != "<script>"


def test_health_and_readiness(server):
    assert requests.get(server.url + "/healthz").json() == {"status": "ok"}
    assert requests.get(server.url + "/readyz").json() == {"status": "ready"}
