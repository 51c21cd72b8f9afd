"""DPoP (RFC 9449): an app proves it holds a key, and its tokens work only with that key.

The app below is written as a developer would write it: ``requests`` for HTTP and joserfc to
sign its proofs. Every §4.3 fault of a proof has its own test, answered with the RFC's error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import pytest
import requests
import urllib3
from urllib3 import HTTPHeaderDict

from tests.introspection.apps import register_app
from tests.oauth.apps import (
    INITIAL_ACCESS_TOKEN,
    REDIRECT,
    App,
    authorization_url,
    decide,
    make_app,
    pkce,
    response_params,
    walk,
)
from tests.oauth.fapi_client import DPoPKey, b64


def token_request(app: App, holder: DPoPKey | None, **data: str) -> requests.Response:
    headers = {"DPoP": holder.proof("POST", f"{app.server.url}/token")} if holder else {}
    return app.post("/token", data, headers=headers)


def userinfo(server, token: str, proof: str | None, scheme: str = "DPoP") -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.get(f"{server.url}/userinfo", headers=headers, timeout=10)


_SAME: Any = object()


def sign_in_with_par(server, app: App, agent, holder: DPoPKey | None, *,
                     redeem_with: DPoPKey | None = _SAME, **extra: str) -> requests.Response:
    """PAR (with a proof when ``holder``), the person consents, the app redeems the code (with a
    proof of ``redeem_with``, by default the same key)."""
    redeem_with = holder if redeem_with is _SAME else redeem_with
    verifier, challenge = pkce()
    headers = {"DPoP": holder.proof("POST", f"{server.url}/par")} if holder else {}
    pushed = app.post("/par", {"response_type": "code", "redirect_uri": REDIRECT,
                               "scope": "openid offline_access", "state": "st-1",
                               "code_challenge": challenge, "code_challenge_method": "S256",
                               **extra}, headers=headers)
    assert pushed.status_code == 201, pushed.text
    page = walk(agent, authorization_url(server, client_id=app.client_id,
                                         request_uri=pushed.json()["request_uri"]))
    if page.status_code == 200 and 'name="decision"' in page.text:
        page = decide(agent, page)
    code = response_params(page)["code"]
    return token_request(app, redeem_with, grant_type="authorization_code", code=code,
                         redirect_uri=REDIRECT, code_verifier=verifier)


def assert_proof_refused(response: requests.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


def assert_challenge(response: requests.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith(f'DPoP error="{error}"')
    assert response.json()["error"] == error


# ------------------------------------------------------------------ the story


def test_a_public_app_binds_its_tokens_to_its_key_from_par_to_refresh(server, nat):
    app = make_app(server, token_endpoint_auth_method="none")
    holder = DPoPKey()
    response = sign_in_with_par(server, app, nat, holder)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "DPoP"

    found = userinfo(server, tokens["access_token"],
                     holder.proof("GET", f"{server.url}/userinfo", token=tokens["access_token"]))
    assert found.status_code == 200, found.text
    assert found.json()["sub"]

    # a public app's refresh token is bound too (RFC 9449 §5): without the key it is refused
    stolen = token_request(app, DPoPKey(), grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert_proof_refused(stolen)
    assert_proof_refused(token_request(app, None, grant_type="refresh_token",
                                       refresh_token=tokens["refresh_token"]))
    refreshed = token_request(app, holder, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP"

    # the app's API, a resource server, introspects the token and sees its key (RFC 9449 §6.2)
    api = register_app(server.services, "Grapher API", resource_server_for=(app.client_id,))
    described = api.introspect(server.url, refreshed.json()["access_token"]).json()
    assert described["active"] and described["token_type"] == "DPoP"
    assert described["cnf"] == {"jkt": holder.jkt}


def test_a_stolen_bound_token_is_refused_at_userinfo(server, nat):
    app = make_app(server, token_endpoint_auth_method="none")
    holder = DPoPKey()
    token = sign_in_with_par(server, app, nat, holder).json()["access_token"]
    url = f"{server.url}/userinfo"
    as_bearer = userinfo(server, token, None, scheme="Bearer")
    assert_challenge(as_bearer, "invalid_token")
    assert_challenge(userinfo(server, token, None), "invalid_dpop_proof")
    thief = DPoPKey()
    assert_challenge(userinfo(server, token, thief.proof("GET", url, token=token)), "invalid_dpop_proof")


def test_a_confidential_apps_tokens_without_a_proof_stay_bearer(server, nat):
    app = make_app(server)
    response = sign_in_with_par(server, app, nat, None)
    assert response.json()["token_type"] == "Bearer"
    token = response.json()["access_token"]
    assert userinfo(server, token, None, scheme="Bearer").status_code == 200
    assert_challenge(userinfo(server, token, None, scheme="DPoP"), "invalid_token")


def test_discovery_lists_the_proof_algorithms(server):
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["dpop_signing_alg_values_supported"] == ["PS256", "ES256", "RS256"]


# ------------------------------------------------------------------ registered, or named at PAR


def test_a_client_registered_for_bound_tokens_must_send_a_proof(server):
    app = make_app(server, grant_types=["client_credentials"], redirect_uris=[],
                   dpop_bound_access_tokens=True)
    assert app.info["dpop_bound_access_tokens"] is True
    assert_proof_refused(token_request(app, None, grant_type="client_credentials"))
    response = token_request(app, DPoPKey(), grant_type="client_credentials")
    assert response.status_code == 200 and response.json()["token_type"] == "DPoP"


def test_dpop_jkt_at_par_binds_the_code_to_that_key(server, nat):
    app = make_app(server)
    holder = DPoPKey()
    assert_proof_refused(sign_in_with_par(server, app, nat, None, redeem_with=DPoPKey(), dpop_jkt=holder.jkt))
    assert_proof_refused(sign_in_with_par(server, app, nat, None, redeem_with=None, dpop_jkt=holder.jkt))
    bound = sign_in_with_par(server, app, nat, None, redeem_with=holder, dpop_jkt=holder.jkt)
    assert bound.status_code == 200 and bound.json()["token_type"] == "DPoP"


def test_a_proof_at_par_binds_the_code_to_its_key(server, nat):
    app = make_app(server)
    assert_proof_refused(sign_in_with_par(server, app, nat, DPoPKey(), redeem_with=DPoPKey()))


def test_dpop_jkt_and_a_proof_at_par_must_name_one_key(server):
    app = make_app(server)
    _, challenge = pkce()
    pushed = app.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                               "code_challenge": challenge, "code_challenge_method": "S256",
                               "dpop_jkt": DPoPKey().jkt},
                      headers={"DPoP": DPoPKey().proof("POST", f"{server.url}/par")})
    assert_proof_refused(pushed)


# ------------------------------------------------------------------ §4.3, one fault at a time


@pytest.fixture
def machine(server) -> App:
    """A confidential app on its own behalf: the shortest way to a token request."""
    return make_app(server, grant_types=["client_credentials"], redirect_uris=[])


def proof_request(app: App, proof: str) -> requests.Response:
    return app.post("/token", {"grant_type": "client_credentials"}, headers={"DPoP": proof})


def unsigned(header: dict[str, Any], payload: dict[str, Any], sign=lambda data: b"") -> str:
    data = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{data}.{b64(sign(data.encode()))}"


def claims_for(app: App, **extra: Any) -> dict[str, Any]:
    return {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": f"{app.server.url}/token",
            "iat": int(time.time()), **extra}


def test_a_proof_for_another_method_is_refused(machine):
    assert_proof_refused(proof_request(machine, DPoPKey().proof("GET", f"{machine.server.url}/token")))


def test_a_proof_for_another_url_is_refused(machine):
    assert_proof_refused(proof_request(machine, DPoPKey().proof("POST", f"{machine.server.url}/par")))


def test_the_url_is_compared_without_query_and_fragment(machine):
    proof = DPoPKey().proof("POST", f"{machine.server.url}/token?x=1#f")
    assert proof_request(machine, proof).status_code == 200


def test_a_replayed_proof_is_refused(machine):
    proof = DPoPKey().proof("POST", f"{machine.server.url}/token")
    assert proof_request(machine, proof).status_code == 200
    assert_proof_refused(proof_request(machine, proof))


def test_a_stale_or_future_proof_is_refused(machine):
    url = f"{machine.server.url}/token"
    assert_proof_refused(proof_request(machine, DPoPKey().proof("POST", url, iat=int(time.time()) - 120)))
    assert_proof_refused(proof_request(machine, DPoPKey().proof("POST", url, iat=int(time.time()) + 120)))


def test_a_proof_carrying_a_private_key_is_refused(machine):
    holder = DPoPKey()
    proof = holder.proof("POST", f"{machine.server.url}/token",
                         header={"jwk": holder.key.as_dict(private=True)})
    assert_proof_refused(proof_request(machine, proof))


def test_an_unsigned_proof_is_refused(machine):
    holder = DPoPKey()
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": holder.key.as_dict(private=False)}
    assert_proof_refused(proof_request(machine, unsigned(header, claims_for(machine))))


def test_an_hmac_proof_is_refused(machine):
    secret = secrets.token_bytes(32)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(secret)}}
    proof = unsigned(header, claims_for(machine),
                     sign=lambda data: hmac.new(secret, data, hashlib.sha256).digest())
    assert_proof_refused(proof_request(machine, proof))


def test_a_proof_of_another_type_or_with_a_bad_signature_is_refused(machine):
    holder = DPoPKey()
    url = f"{machine.server.url}/token"
    assert_proof_refused(proof_request(machine, holder.proof("POST", url, header={"typ": "JWT"})))
    forged = holder.proof("POST", url, header={"jwk": DPoPKey().key.as_dict(private=False)})
    assert_proof_refused(proof_request(machine, forged))
    assert_proof_refused(proof_request(machine, "not-a-jws"))


def test_two_proofs_are_refused(machine):
    url = f"{machine.server.url}/token"
    headers = HTTPHeaderDict({"Authorization": "Basic " + base64.b64encode(
        f"{machine.client_id}:{machine.secret}".encode()).decode()})
    headers.add("DPoP", DPoPKey().proof("POST", url))
    headers.add("DPoP", DPoPKey().proof("POST", url))
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = urllib3.request("POST", url, body="grant_type=client_credentials", headers=headers,
                               timeout=10)
    assert response.status == 400 and response.json()["error"] == "invalid_dpop_proof"


def test_a_proof_at_userinfo_needs_the_tokens_hash(machine):
    holder = DPoPKey()
    token = token_request(machine, holder, grant_type="client_credentials").json()["access_token"]
    url = f"{machine.server.url}/userinfo"
    assert_challenge(userinfo(machine.server, token, holder.proof("GET", url)), "invalid_dpop_proof")
    wrong = holder.proof("GET", url, token="another-token")
    assert_challenge(userinfo(machine.server, token, wrong), "invalid_dpop_proof")
    # with the right hash the proof passes; this token has no person, so no userinfo
    right = userinfo(machine.server, token, holder.proof("GET", url, token=token))
    assert right.status_code == 403 and right.json()["error"] == "insufficient_scope"


# ------------------------------------------------------------------ server nonces (§8)


def test_a_server_requiring_nonces_hands_them_out_and_checks_them(make_as):
    server = make_as(AGGREGATOR_DPOP_NONCE="true", AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = make_app(server, grant_types=["client_credentials"], redirect_uris=[])
    holder = DPoPKey()
    first = token_request(app, holder, grant_type="client_credentials")
    assert_proof_refused(first, "use_dpop_nonce")
    holder.nonce = "v1.not-a-nonce-of-ours"
    assert_proof_refused(token_request(app, holder, grant_type="client_credentials"), "use_dpop_nonce")
    holder.nonce = first.headers["DPoP-Nonce"]
    issued = token_request(app, holder, grant_type="client_credentials")
    assert issued.status_code == 200, issued.text
    assert issued.headers["DPoP-Nonce"]
    token = issued.json()["access_token"]

    holder.nonce = None
    url = f"{server.url}/userinfo"
    at_resource = userinfo(server, token, holder.proof("GET", url, token=token))
    assert_challenge(at_resource, "use_dpop_nonce")
    holder.nonce = at_resource.headers["DPoP-Nonce"]
    assert userinfo(server, token, holder.proof("GET", url, token=token)).status_code == 403
