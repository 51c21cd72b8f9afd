"""Whatever a client sends, the bank answers a clear 4xx, never a 500."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.flows import REDIRECT_URI

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
QUOTE = '"'


def authorize_query(**overrides: str) -> dict[str, str]:
    query = {
        "response_type": "code", "client_id": "aggregator", "redirect_uri": REDIRECT_URI,
        "scope": "accounts", "state": "s", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    query.update(overrides)
    return query


BASIC = ("aggregator", "sandbox-test-secret")

CASES: list[tuple[str, str, dict]] = [
    # the authorization endpoint
    ("GET", "/astoria/authorize", {}),
    ("GET", "/astoria/authorize", {"params": authorize_query(response_type="token")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(response_type=QUOTE)}),
    ("GET", "/astoria/authorize", {"params": authorize_query(redirect_uri=f"http://x/{QUOTE}")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(redirect_uri="http://[::1")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(redirect_uri="http://127.0.0.1:99999/")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(scope=f"accounts {QUOTE}\\")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(scope="accounts\u2603")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(code_challenge="short")}),
    ("GET", "/astoria/authorize", {"params": authorize_query(client_id=QUOTE)}),
    ("GET", "/astoria/authorize?client_id=a&client_id=b", {}),
    ("GET", "/astoria/authorize?redirect_uri=%ff%fe", {}),
    ("POST", "/astoria/authorize", {"params": authorize_query(), "data": {"decision": "allow"}}),
    ("POST", "/astoria/authorize", {"params": authorize_query(), "data": {"username": "x"}}),
    ("PUT", "/astoria/authorize", {}),
    # the token endpoint
    ("POST", "/astoria/token", {}),
    ("POST", "/astoria/token", {"json": {"grant_type": "authorization_code"}}),
    ("POST", "/astoria/token", {"data": {"grant_type": "authorization_code"}, "auth": BASIC}),
    ("POST", "/astoria/token", {"data": {"grant_type": "authorization_code", "code": "x"}}),
    ("POST", "/astoria/token", {"data": {"grant_type": QUOTE}, "auth": BASIC}),
    ("POST", "/astoria/token", {"data": {"grant_type": "client_credentials"}, "auth": BASIC}),
    ("POST", "/astoria/token", {"data": [("grant_type", "refresh_token")] * 2, "auth": BASIC}),
    ("POST", "/astoria/token", {"data": [(QUOTE, "a"), (QUOTE, "b")], "auth": BASIC}),
    ("POST", "/astoria/token", {"data": {"grant_type": "refresh_token"}, "auth": BASIC}),
    ("POST", "/astoria/token", {"data": {"grant_type": "refresh_token", "refresh_token": ""},
                                "auth": BASIC}),
    ("POST", "/astoria/token", {"data": {"grant_type": "refresh_token", "refresh_token": "x",
                                         "scope": QUOTE}, "auth": BASIC}),
    ("POST", "/astoria/token", {"data": {"grant_type": "refresh_token"},
                                "headers": {"Authorization": "Basic !!!not-base64"}}),
    ("POST", "/astoria/token", {"data": {"grant_type": "refresh_token"},
                                "headers": {"Authorization": "Basic w6k6w6k="}}),
    ("POST", "/astoria/token", {"data": {"grant_type": "refresh_token", "refresh_token": "x"},
                                "headers": {"Authorization": "Basic /w=="}}),
    ("POST", "/astoria/revoke", {"data": {"token": "x"},
                                 "headers": {"Authorization": "Basic eDr/"}}),
    ("POST", "/astoria/token", {"data": b"\xff\xfe=\xff",
                                "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/astoria/token", {"data": {"grant_type": "authorization_code", "code": "x",
                                         "client_id": "aggregator", "client_secret": QUOTE}}),
    ("POST", "/astoria/token", {"data": "x" * 100_000}),
    ("GET", "/astoria/token", {}),
    # revocation
    ("POST", "/astoria/revoke", {}),
    ("POST", "/astoria/revoke", {"data": {"token": "x"}}),
    ("POST", "/astoria/revoke", {"data": {"token": QUOTE, "token_type_hint": QUOTE}}),
    ("POST", "/astoria/revoke", {"data": [("token", "a"), ("token", "b")], "auth": BASIC}),
    # the resource API
    ("GET", "/astoria/userinfo", {"headers": {"Authorization": "Bearer"}}),
    ("GET", "/astoria/userinfo", {"headers": {"Authorization": "Bearer    "}}),
    ("GET", "/astoria/userinfo", {"headers": {"Authorization": "Bearer " + "x" * 8000}}),
    ("GET", "/astoria/userinfo", {"headers": {"Authorization": "Bearer a\"b"}}),
    ("GET", "/astoria/userinfo", {"headers": {"Authorization": "\u00e9\u00e9".encode().decode("latin-1")}}),
    ("GET", "/astoria/users/%22%00/accounts", {"headers": {"Authorization": "Bearer x"}}),
    ("GET", "/astoria/users/1/transactions", {"params": {"from": "\u2603"}}),
    ("POST", "/astoria/users/1/accounts", {}),
    # discovery and admin
    ("DELETE", "/institutions", {}),
    ("GET", "/.well-known/oauth-authorization-server", {}),
    ("POST", "/_admin/faults", {"data": "{not json", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/_admin/faults", {"json": None}),
    ("POST", "/_admin/faults", {"json": {QUOTE: 1}}),
    ("POST", "/_admin/revoke", {"json": {"institution": "astoria", "username": "x" * 500}}),
    ("GET", "/_admin/reset", {}),
    ("POST", "/_admin/revoke-token", {"json": {}}),
    ("POST", "/_admin/revoke-token", {"json": {"token": 7}}),
    ("POST", "/_admin/revoke-token", {"json": {"token": "t", "extra": 1}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CASES)
def test_bad_input_gets_a_clear_4xx(sandbox_bank, method, path, kwargs):
    answer = requests.request(method, sandbox_bank.url + path, allow_redirects=False,
                              timeout=10, **kwargs)
    if answer.status_code == 302:  # an error the client hears about on its redirect URI
        assert "error=" in answer.headers["Location"]
        return
    assert 400 <= answer.status_code < 500, answer.text
    if answer.headers["Content-Type"].startswith("application/json"):
        assert answer.json()["error"]
    else:
        assert "text/html" in answer.headers["Content-Type"]
