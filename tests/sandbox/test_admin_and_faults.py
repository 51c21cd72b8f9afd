"""The development-only controls: fault injection, customer revocation, counters, reset."""

from __future__ import annotations

import time

import requests

from tests.sandbox.flows import api_get, connect, token_request

DEFAULT_FAULTS = {
    "latency_ms": 0,
    "failure_rate": 0.0,
    "rotate_refresh_tokens": True,
    "access_token_ttl": 300,
}


def test_faults_start_at_their_defaults_and_change_by_subset(sandbox_bank):
    assert sandbox_bank.admin.faults() == DEFAULT_FAULTS
    changed = sandbox_bank.admin.set_faults(latency_ms=5)
    assert changed == {**DEFAULT_FAULTS, "latency_ms": 5}
    assert sandbox_bank.admin.faults() == changed


def test_latency_slows_the_token_endpoint_and_the_api(sandbox_bank):
    _, token = connect(sandbox_bank)
    sandbox_bank.admin.set_faults(latency_ms=300)

    started = time.monotonic()
    assert api_get(f"{token['endpoint']}/accounts", token["access_token"]).ok
    assert time.monotonic() - started >= 0.3

    started = time.monotonic()
    assert token_request(sandbox_bank, grant_type="refresh_token",
                         refresh_token=token["refresh_token"]).ok
    assert time.monotonic() - started >= 0.3


def test_failure_rate_makes_token_requests_fail_with_503(sandbox_bank):
    _, token = connect(sandbox_bank)
    sandbox_bank.admin.set_faults(failure_rate=1.0)
    answer = token_request(sandbox_bank, grant_type="refresh_token",
                           refresh_token=token["refresh_token"])
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The institution is temporarily unavailable, try again later.",
    }
    assert sandbox_bank.admin.stats()["injected_failures"] == 1
    # The failed attempt did not spend the refresh token.
    sandbox_bank.admin.set_faults(failure_rate=0.0)
    assert token_request(sandbox_bank, grant_type="refresh_token",
                         refresh_token=token["refresh_token"]).ok


def test_a_partial_failure_rate_fails_some_requests(sandbox_bank):
    sandbox_bank.admin.set_faults(failure_rate=0.5)
    statuses = [
        token_request(sandbox_bank, grant_type="refresh_token", refresh_token="x").status_code
        for _ in range(60)
    ]
    # P(all 60 alike) is 2**-59: both outcomes show up.
    assert statuses.count(503) and statuses.count(400)


def test_rotation_can_be_switched_off(sandbox_bank):
    _, token = connect(sandbox_bank)
    sandbox_bank.admin.set_faults(rotate_refresh_tokens=False)
    for _ in range(3):
        answer = token_request(sandbox_bank, grant_type="refresh_token",
                               refresh_token=token["refresh_token"])
        assert answer.status_code == 200
        assert "refresh_token" not in answer.json()  # keep using the one you have


def test_access_token_ttl_sets_the_lifetime(sandbox_bank):
    # two seconds: expiry is kept in whole seconds, so a one-second token issued late in a
    # second could already be over at the first call
    sandbox_bank.admin.set_faults(access_token_ttl=2)
    _, token = connect(sandbox_bank)
    assert token["expires_in"] == 2
    assert api_get(f"{token['endpoint']}/accounts", token["access_token"]).ok
    time.sleep(2.2)
    expired = api_get(f"{token['endpoint']}/accounts", token["access_token"])
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    refreshed = token_request(sandbox_bank, grant_type="refresh_token",
                              refresh_token=token["refresh_token"])
    assert refreshed.json()["expires_in"] == 2


def test_admin_revoke_ends_every_grant_of_one_customer(sandbox_bank):
    _, first = connect(sandbox_bank, "astoria", username="alice")
    _, second = connect(sandbox_bank, "astoria", username="Alice")
    _, elsewhere = connect(sandbox_bank, "monami", username="alice")
    _, someone_else = connect(sandbox_bank, "astoria", username="bob")

    result = sandbox_bank.admin.revoke("astoria", "alice")
    assert result["revoked_grants"] == 2
    assert result["user_id"] == first["endpoint"].rsplit("/", 1)[1]
    for token in (first, second):
        assert api_get(f"{token['endpoint']}/accounts", token["access_token"]).status_code == 401
        assert token_request(sandbox_bank, grant_type="refresh_token",
                             refresh_token=token["refresh_token"]).status_code == 400
    for token in (elsewhere, someone_else):
        assert api_get(f"{token['endpoint']}/accounts", token["access_token"]).ok
    assert sandbox_bank.admin.revoke("astoria", "alice")["revoked_grants"] == 0


def test_stats_count_token_requests_by_grant_type_and_institution(sandbox_bank):
    _, token = connect(sandbox_bank, "astoria")
    connect(sandbox_bank, "norma")
    token_request(sandbox_bank, grant_type="refresh_token", refresh_token=token["refresh_token"])
    token_request(sandbox_bank, grant_type="password", username="x", password="y")

    stats = sandbox_bank.admin.stats()
    assert stats["token_requests"] == {
        "total": 4,
        "by_grant_type": {"authorization_code": 2, "refresh_token": 1, "other": 1},
        "by_institution": {
            "astoria": {"authorization_code": 1, "refresh_token": 1, "other": 1},
            "norma": {"authorization_code": 1},
        },
    }
    assert stats["since"] <= time.time()


def test_reset_restores_faults_and_counters_but_keeps_grants(sandbox_bank):
    _, token = connect(sandbox_bank)
    sandbox_bank.admin.set_faults(latency_ms=10, rotate_refresh_tokens=False)
    sandbox_bank.admin.reset()
    assert sandbox_bank.admin.faults() == DEFAULT_FAULTS
    assert sandbox_bank.admin.stats()["token_requests"]["total"] == 0
    assert api_get(f"{token['endpoint']}/accounts", token["access_token"]).ok


def test_bad_admin_input_is_a_clear_400(sandbox_bank):
    url = sandbox_bank.url + "/_admin"
    bad = [
        ("faults", {"latency_ms": -1}),
        ("faults", {"latency_ms": "100"}),
        ("faults", {"failure_rate": 1.5}),
        ("faults", {"rotate_refresh_tokens": "yes"}),
        ("faults", {"access_token_ttl": 0}),
        ("faults", {"colour": "blue"}),
        ("faults", [1, 2]),
        ("revoke", {"institution": "nowhere", "username": "a"}),
        ("revoke", {"institution": "astoria"}),
        ("revoke", {"institution": "astoria", "username": "\u0000"}),
    ]
    for path, body in bad:
        answer = requests.post(f"{url}/{path}", json=body, timeout=10)
        assert answer.status_code == 400, (path, body)
        assert answer.json()["error"] == "invalid_request"
    not_json = requests.post(f"{url}/faults", data="latency_ms=5", timeout=10)
    assert not_json.status_code == 400
    assert sandbox_bank.admin.faults() == DEFAULT_FAULTS
