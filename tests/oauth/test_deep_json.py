"""JSON nested ten thousand levels deep, wherever JSON comes in: a 400, never a 500."""

from __future__ import annotations

import base64
import json

import requests

from tests.oauth.apps import INITIAL_ACCESS_TOKEN, REDIRECT, make_app, pkce

DEEP = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a":' * 5_000 + "1" + "}" * 5_000


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_deep_client_metadata_is_invalid_client_metadata(server):
    response = requests.post(f"{server.url}/register", data=DEEP_OBJECT, timeout=10,
                             headers={"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}",
                                      "Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_client_metadata")


def test_a_deep_claims_parameter_is_invalid_request_at_par_and_authorize(server, nat):
    app = make_app(server)
    _, challenge = pkce()
    params = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid", "state": "s",
              "code_challenge": challenge, "code_challenge_method": "S256", "claims": DEEP}
    pushed = app.post("/par", params)
    assert (pushed.status_code, pushed.json()["error"]) == (400, "invalid_request")
    answer = nat.http.get(f"{server.url}/authorize", params={"client_id": app.client_id, **params},
                          allow_redirects=False)
    assert answer.status_code in (302, 303) and "error=invalid_request" in answer.headers["Location"]


def test_deep_authorization_details_are_invalid_authorization_details(server):
    app = make_app(server)
    _, challenge = pkce()
    pushed = app.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                               "code_challenge": challenge, "code_challenge_method": "S256",
                               "authorization_details": "[" * 3000 + "]" * 3000})
    assert (pushed.status_code, pushed.json()["error"]) == (400, "invalid_authorization_details")


def test_a_deep_client_assertion_is_invalid_client(server):
    make_app(server)
    for header, payload in ((_b64(DEEP_OBJECT), _b64('{"sub": "x"}')),
                            (_b64('{"alg": "PS256"}'), _b64('{"sub": ' + DEEP + "}"))):
        response = requests.post(f"{server.url}/token", timeout=10, data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": f"{header}.{payload}.c2ln"})
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client"), response.text


def test_a_deep_request_object_is_refused(server):
    app = make_app(server)
    forged = f"{_b64(json.dumps({'alg': 'PS256'}))}.{_b64(DEEP_OBJECT)}.c2ln"
    pushed = app.post("/par", {"request": forged})
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request_object"
