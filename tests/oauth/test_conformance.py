"""The OpenID Foundation conformance suite's checks for an OP, one test each, against a live AS.

``test_oidcc_*``: the OIDC Basic OP plan (``oidcc-basic-certification-test-plan``) against the
default profile with ``client_secret_basic`` apps. ``test_fapi2_*``: the FAPI 2.0 Security
Profile Final plan (``fapi2-security-profile-final-test-plan``, private_key_jwt + DPoP) against
``AGGREGATOR_PROFILE=fapi2``. Each test is named after the suite's module; docs/conformance.md
lists every module with its test and status.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3
from joserfc import jws, jwt
from urllib3 import HTTPHeaderDict

from aggregator.oauth.client_auth import JWT_BEARER
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import (
    DATA,
    REDIRECT,
    App,
    assert_error_redirect,
    authorization_url,
    decide,
    exchange,
    id_token_claims,
    make_app,
    new_key,
    pkce,
    register,
    response_params,
    walk,
)
from tests.oauth.fapi_client import DPoPKey, FapiApp, b64

#: the protected header of an unsigned JWS
NONE_HEADER = b64(b'{"alg":"none"}')

# ================================================================== OIDC Basic OP (default profile)


def request_url(server: LiveAS, app: App, **overrides: str | None) -> tuple[str, str]:
    """A code-flow authorization URL (PKCE, ``state=st-1``, ``nonce=n-1``); (url, verifier)."""
    verifier, challenge = pkce()
    params = {"client_id": app.client_id, "response_type": "code", "redirect_uri": REDIRECT,
              "scope": f"openid {DATA}", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
              "code_challenge_method": "S256", **overrides}
    return authorization_url(server, **{k: v for k, v in params.items() if v is not None}), verifier


def through_consent(agent: PersonAgent, url: str) -> dict[str, str]:
    page = walk(agent, url)
    if page.status_code == 200 and 'name="decision"' in page.text:
        page = decide(agent, page)
    return response_params(page)


def tokens_for(server: LiveAS, app: App, agent: PersonAgent, **overrides: str | None) -> dict[str, Any]:
    url, verifier = request_url(server, app, **overrides)
    params = through_consent(agent, url)
    response = exchange(app, params["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json()


def shown_not_redirected(response: requests.Response, error: str) -> None:
    assert response.status_code == 400 and "Location" not in response.headers, response.status_code
    assert error in response.text


def test_oidcc_server(server, nat, banks):
    app = make_app(server)
    url, verifier = request_url(server, app)
    params = through_consent(nat, url)
    assert params["state"] == "st-1" and params["iss"] == server.url  # RFC 9207 §2
    tokens = exchange(app, params["code"], verifier).json()
    claims = id_token_claims(server, tokens["id_token"])  # OIDC Core §3.1.3.7
    now = time.time()
    assert claims["iss"] == server.url and claims["aud"] == app.client_id
    assert claims["nonce"] == "n-1" and claims["sub"]
    assert claims["iat"] <= now + 5 and claims["exp"] > now
    assert "at_hash" in claims


def test_oidcc_response_type_missing(server, nat):
    url, _ = request_url(server, make_app(server), response_type=None)
    response = nat.http.get(url, allow_redirects=False)
    assert_error_redirect(response, server, "invalid_request")


def test_oidcc_id_token_signature(server, nat, banks):
    app = make_app(server)
    tokens = tokens_for(server, app, nat)
    header = jws.extract_compact(tokens["id_token"].encode()).headers()
    published = requests.get(f"{server.url}/jwks", timeout=10).json()
    assert header["kid"] in {key["kid"] for key in published["keys"]}
    assert id_token_claims(server, tokens["id_token"])["aud"] == app.client_id


def test_oidcc_id_token_unsigned(server):
    """``none`` is never offered, and a client cannot register for it."""
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert "none" not in metadata["id_token_signing_alg_values_supported"]
    refused = register(server, redirect_uris=[REDIRECT], id_token_signed_response_alg="none")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata"


def _userinfo_sub(server: LiveAS, nat: PersonAgent, how: str) -> tuple[str, str]:
    tokens = tokens_for(server, make_app(server), nat)
    token, url = tokens["access_token"], f"{server.url}/userinfo"
    if how == "get":
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    elif how == "post-header":
        response = requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    else:
        response = requests.post(url, data={"access_token": token}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["sub"], id_token_claims(server, tokens["id_token"])["sub"]


def test_oidcc_userinfo_get(server, nat, banks):
    found, expected = _userinfo_sub(server, nat, "get")
    assert found == expected


def test_oidcc_userinfo_post_header(server, nat, banks):
    found, expected = _userinfo_sub(server, nat, "post-header")
    assert found == expected


def test_oidcc_userinfo_post_body(server, nat, banks):
    found, expected = _userinfo_sub(server, nat, "post-body")
    assert found == expected


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(server, nat, banks):
    tokens = tokens_for(server, make_app(server), nat, nonce=None)
    assert "nonce" not in id_token_claims(server, tokens["id_token"])


def test_oidcc_ensure_other_scope_order_succeeds(server, nat, banks):
    tokens = tokens_for(server, make_app(server), nat, scope=f"{DATA} openid")
    assert set(tokens["scope"].split()) == {"openid", *DATA.split()} and "id_token" in tokens


def _accepted(server: LiveAS, nat: PersonAgent, **extra: str) -> None:
    """OIDC Core §3.1.2.1 / RFC 6749 §3.1: parameters the server does not act on are ignored."""
    tokens = tokens_for(server, make_app(server), nat, **extra)
    assert id_token_claims(server, tokens["id_token"])["nonce"] == "n-1"


def test_oidcc_display_page(server, nat, banks):
    _accepted(server, nat, display="page")


def test_oidcc_display_popup(server, nat, banks):
    _accepted(server, nat, display="popup")


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(server, nat, banks):
    _accepted(server, nat, extra_unknown_parameter="ignored")


def test_oidcc_login_hint(server, nat, banks):
    _accepted(server, nat, login_hint="nat")


def test_oidcc_ui_locales(server, nat, banks):
    _accepted(server, nat, ui_locales="se")


def test_oidcc_claims_locales(server, nat, banks):
    _accepted(server, nat, claims_locales="se")


def test_oidcc_ensure_request_with_acr_values_succeeds(server, nat, banks):
    _accepted(server, nat, acr_values="1 2")


def test_oidcc_prompt_login(server, nat, banks):
    app = make_app(server)
    tokens_for(server, app, nat)
    time.sleep(1.1)  # auth_time has a one-second resolution
    url, _ = request_url(server, app, prompt="login")
    start = nat.http.get(url, allow_redirects=False)
    login = walk(nat, start.headers["Location"])
    assert login.status_code == 200 and 'action="/login"' in login.text


def test_oidcc_prompt_none_not_logged_in(server):
    app = make_app(server)
    url, _ = request_url(server, app, prompt="none")
    response = PersonAgent(server.url).http.get(url, allow_redirects=False)
    assert_error_redirect(response, server, "login_required")  # OIDC Core §3.1.2.6


def test_oidcc_prompt_none_logged_in(server, nat, banks):
    app = make_app(server)
    first = tokens_for(server, app, nat)
    url, verifier = request_url(server, app, prompt="none")
    params = response_params(nat.http.get(url, allow_redirects=False))  # no page in between
    again = exchange(app, params["code"], verifier).json()
    subject = id_token_claims(server, first["id_token"])["sub"]
    assert id_token_claims(server, again["id_token"])["sub"] == subject


def test_oidcc_id_token_hint(server, nat, banks):
    """A request with the ID token already issued as ``id_token_hint`` (and ``prompt=none``)
    succeeds for the person it names."""
    app = make_app(server)
    first = tokens_for(server, app, nat)
    url, verifier = request_url(server, app, prompt="none", id_token_hint=first["id_token"])
    params = response_params(nat.http.get(url, allow_redirects=False))
    assert exchange(app, params["code"], verifier).status_code == 200


def test_oidcc_max_age_1(server, nat, banks):
    app = make_app(server)
    tokens_for(server, app, nat)
    time.sleep(2)
    url, _ = request_url(server, app, max_age="1")
    start = nat.http.get(url, allow_redirects=False)
    login = walk(nat, start.headers["Location"])
    assert 'action="/login"' in login.text, "a login older than max_age is not reused"


def test_oidcc_max_age_10000(server, nat, banks):
    tokens = tokens_for(server, make_app(server), nat, max_age="10000")
    claims = id_token_claims(server, tokens["id_token"])
    assert abs(claims["auth_time"] - time.time()) < 60  # OIDC Core §2: required with max_age


def test_oidcc_codereuse(server, nat, banks):
    app = make_app(server)
    url, verifier = request_url(server, app)
    code = through_consent(nat, url)["code"]
    first = exchange(app, code, verifier)
    assert first.status_code == 200
    second = exchange(app, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: what the code issued is revoked (oidcc-codereuse-30seconds checks the same)
    described = app.post("/introspect", {"token": first.json()["access_token"]}).json()
    assert described == {"active": False}


def test_oidcc_ensure_registered_redirect_uri(server, nat):
    url, _ = request_url(server, make_app(server), redirect_uri="https://attacker.example/callback")
    shown_not_redirected(nat.http.get(url, allow_redirects=False), "invalid_request")


def test_oidcc_ensure_post_request_succeeds(server, nat, banks):
    app = make_app(server)
    verifier, challenge = pkce()
    form = {"client_id": app.client_id, "response_type": "code", "redirect_uri": REDIRECT,
            "scope": "openid", "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256"}
    start = nat.http.post(f"{server.url}/authorize", data=form, allow_redirects=False)
    params = through_consent(nat, start.headers["Location"])
    assert exchange(app, params["code"], verifier).status_code == 200


def test_oidcc_server_client_secret_post(server, nat, banks):
    app = make_app(server, token_endpoint_auth_method="client_secret_post")
    tokens = tokens_for(server, app, nat)
    assert id_token_claims(server, tokens["id_token"])["aud"] == app.client_id


def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(server, nat):
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["request_uri_parameter_supported"] is False
    app = make_app(server)
    response = nat.http.get(authorization_url(server, client_id=app.client_id,
                                              request_uri="https://app.example/request.jwt"),
                            allow_redirects=False)
    shown_not_redirected(response, "invalid_request_uri")


def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(server, nat):
    app = make_app(server)
    claims = {"iss": app.client_id, "aud": server.url, "exp": int(time.time()) + 60,
              "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid"}
    unsigned = f"{NONE_HEADER}.{b64(json.dumps(claims).encode())}."
    response = nat.http.get(authorization_url(server, client_id=app.client_id, request=unsigned,
                                              redirect_uri=REDIRECT), allow_redirects=False)
    shown_not_redirected(response, "invalid_request_object")


def test_oidcc_claims_essential(server, nat, banks):
    claims = '{"userinfo":{"preferred_username":{"essential":true}}}'
    tokens = tokens_for(server, make_app(server), nat, claims=claims)
    info = requests.get(f"{server.url}/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["preferred_username"] == "nat"


def test_oidcc_refresh_token(server, nat, banks):
    app = make_app(server)
    tokens = tokens_for(server, app, nat, scope=f"openid offline_access {DATA}")
    refreshed = app.post("/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    claims = id_token_claims(server, refreshed.json()["id_token"])
    assert claims["sub"] == id_token_claims(server, tokens["id_token"])["sub"]  # OIDC Core §12.2
    other = make_app(server)  # a refresh token is bound to its client (RFC 6749 §6)
    stolen = other.post("/token", {"grant_type": "refresh_token",
                                   "refresh_token": refreshed.json()["refresh_token"]})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_oidcc_ensure_request_with_valid_pkce_succeeds(server, nat, banks):
    app = make_app(server)
    url, verifier = request_url(server, app)
    code = through_consent(nat, url)["code"]
    assert exchange(app, code, verifier).status_code == 200
    url, _ = request_url(server, app)
    wrong = exchange(app, through_consent(nat, url)["code"], verifier)  # another request's verifier
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


# ------------------------------------------------------------------ checks the brief adds to the plans


def test_check_unsupported_response_type_is_refused(server, nat):
    url, _ = request_url(server, make_app(server), response_type="token")
    assert_error_redirect(nat.http.get(url, allow_redirects=False), server, "unsupported_response_type")


def test_check_scope_without_openid_gets_no_id_token(server, nat, banks):
    tokens = tokens_for(server, make_app(server), nat, scope=DATA)
    assert "id_token" not in tokens and tokens["access_token"]
    info = requests.get(f"{server.url}/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 403 and info.json()["error"] == "insufficient_scope"


def test_check_userinfo_with_a_bad_token_is_refused(server):
    response = requests.get(f"{server.url}/userinfo", headers={"Authorization": "Bearer not-a-token"},
                            timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")  # RFC 6750 §3


# ================================================================== FAPI 2.0 Security Profile (fapi2)


def push(grapher: FapiApp, *, proof: DPoPKey | None = None,
         **overrides: str | None) -> tuple[requests.Response, str]:
    """A pushed request as the suite sends it (PKCE, ``state``, ``nonce``); (response, verifier)."""
    verifier, challenge = pkce()
    params = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid offline_access",
              "state": "st-1", "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256",
              **overrides}
    headers = {"DPoP": proof.proof("POST", f"{grapher.server.url}/par")} if proof else {}
    response = grapher.app.post("/par", {k: v for k, v in params.items() if v is not None}, headers=headers)
    return response, verifier


def authorize(grapher: FapiApp, agent: PersonAgent, request_uri: str) -> dict[str, str]:
    """The person at ``/authorize`` with only ``client_id`` and ``request_uri``, through consent."""
    return through_consent(agent, authorization_url(grapher.server, client_id=grapher.app.client_id,
                                                    request_uri=request_uri))


def signed_in(grapher: FapiApp, agent: PersonAgent, **overrides: str | None) -> tuple[dict[str, str], str]:
    pushed, verifier = push(grapher, **overrides)
    assert pushed.status_code == 201, pushed.text
    return authorize(grapher, agent, pushed.json()["request_uri"]), verifier


def redeem(grapher: FapiApp, code: str, verifier: str, key: DPoPKey | None) -> requests.Response:
    headers = {"DPoP": key.proof("POST", f"{grapher.server.url}/token")} if key else {}
    return grapher.app.post("/token", {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT, "code_verifier": verifier}, headers=headers)


def refused(response: requests.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text


def test_fapi2_discovery_end_point_verification(fapi):
    metadata = requests.get(f"{fapi.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == fapi.url
    assert metadata["pushed_authorization_request_endpoint"] == f"{fapi.url}/par"
    assert metadata["require_pushed_authorization_requests"] is True
    assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["response_types_supported"] == ["code"]
    for name in ("id_token_signing_alg_values_supported", "dpop_signing_alg_values_supported",
                 "token_endpoint_auth_signing_alg_values_supported"):
        assert set(metadata[name]) <= {"PS256", "ES256", "EdDSA"} and metadata[name], name


def test_fapi2_happy_flow(fapi, ana, grapher):
    location, verifier = grapher.sign_in(ana)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["iss"] == fapi.url and params["state"] == grapher.state
    token = grapher.fetch_token(location, verifier)
    assert token["token_type"] == "DPoP" and token["expires_in"] > 0
    claims = id_token_claims(fapi, token["id_token"])
    assert claims["iss"] == fapi.url and claims["aud"] == grapher.app.client_id
    assert claims["nonce"] == "n-0S6" and claims["exp"] > time.time() >= claims["iat"] - 5
    assert grapher.userinfo(token["access_token"]).status_code == 200


def test_fapi2_user_rejects_authentication(fapi, ana, grapher):
    pushed, _ = push(grapher)
    page = walk(ana, authorization_url(fapi, client_id=grapher.app.client_id,
                                       request_uri=pushed.json()["request_uri"]))
    assert_error_redirect(decide(ana, page, "deny"), fapi, "access_denied")


def test_fapi2_ensure_authorization_request_without_state_success(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana, state=None)
    assert "state" not in params and params["iss"] == fapi.url
    assert redeem(grapher, params["code"], verifier, grapher.dpop).status_code == 200


def test_fapi2_ensure_authorization_request_without_nonce_success(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana, nonce=None)
    tokens = redeem(grapher, params["code"], verifier, grapher.dpop).json()
    assert "nonce" not in id_token_claims(fapi, tokens["id_token"])


def test_fapi2_ensure_other_scope_order_succeeds(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana, scope="offline_access openid")
    assert redeem(grapher, params["code"], verifier, grapher.dpop).status_code == 200


def test_fapi2_ensure_authorization_request_with_long_state(fapi, ana, grapher):
    state = secrets.token_urlsafe(288)  # 384 characters, as the suite sends
    params, _ = signed_in(grapher, ana, state=state)
    assert params["state"] == state


def test_fapi2_ensure_authorization_request_with_long_nonce(fapi, ana, grapher):
    nonce = secrets.token_urlsafe(288)
    params, verifier = signed_in(grapher, ana, nonce=nonce)
    tokens = redeem(grapher, params["code"], verifier, grapher.dpop).json()
    assert id_token_claims(fapi, tokens["id_token"])["nonce"] == nonce


def test_fapi2_ensure_authorization_request_with_64_char_nonce_success(fapi, ana, grapher):
    nonce = "n" * 64
    params, verifier = signed_in(grapher, ana, nonce=nonce)
    tokens = redeem(grapher, params["code"], verifier, grapher.dpop).json()
    assert id_token_claims(fapi, tokens["id_token"])["nonce"] == nonce


def test_fapi2_ensure_different_nonce_inside_and_outside_request_object(fapi, ana, grapher):
    """Also ``...-ensure-different-state-inside-and-outside-request-object``: only the pushed
    parameters count (RFC 9126 §4), whatever else the authorization URL carries."""
    pushed, verifier = push(grapher)
    url = authorization_url(fapi, client_id=grapher.app.client_id, request_uri=pushed.json()["request_uri"],
                            state="outside", nonce="outside")
    params = through_consent(ana, url)
    assert params["state"] == "st-1"
    tokens = redeem(grapher, params["code"], verifier, grapher.dpop).json()
    assert id_token_claims(fapi, tokens["id_token"])["nonce"] == "n-1"


def test_fapi2_state_only_outside_request_object_not_used(fapi, ana, grapher):
    pushed, _ = push(grapher, state=None)
    url = authorization_url(fapi, client_id=grapher.app.client_id, request_uri=pushed.json()["request_uri"],
                            state="outside")
    assert "state" not in through_consent(ana, url)


def test_fapi2_test_claims_parameter_identity_claims(fapi, ana, grapher):
    claims = json.dumps({"id_token": {"given_name": {"essential": True}, "preferred_username": None},
                         "userinfo": {"family_name": None}})
    params, verifier = signed_in(grapher, ana, claims=claims)
    tokens = redeem(grapher, params["code"], verifier, grapher.dpop).json()
    claimed = id_token_claims(fapi, tokens["id_token"])
    assert claimed["preferred_username"] == "ana" and "given_name" not in claimed  # none we do not hold


@pytest.fixture
def bound(fapi, ana, grapher) -> str:
    """A DPoP-bound access token of the Grapher."""
    params, verifier = signed_in(grapher, ana)
    response = redeem(grapher, params["code"], verifier, grapher.dpop)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_fapi2_access_token_type_header_case_sensitivity(fapi, grapher, bound):
    for scheme in ("dpop", "DPOP", "dPoP"):  # RFC 9110 §11.1: schemes are case-insensitive
        response = requests.get(f"{fapi.url}/userinfo", timeout=10, headers={
            "Authorization": f"{scheme} {bound}",
            "DPoP": grapher.dpop.proof("GET", f"{fapi.url}/userinfo", token=bound)})
        assert response.status_code == 200, (scheme, response.text)


def _token_with_iat(grapher: FapiApp, shift: int) -> requests.Response:
    machine = FapiApp(grapher.server, make_app(grapher.server, key=new_key("EC"),
                                               grant_types=["client_credentials"], redirect_uris=[]))
    proof = machine.dpop.proof("POST", f"{grapher.server.url}/token", iat=int(time.time()) + shift)
    return machine.app.post("/token", {"grant_type": "client_credentials"}, headers={"DPoP": proof})


def test_fapi2_ensure_dpopproof_with_iat_10seconds_before_succeeds(fapi, grapher):
    assert _token_with_iat(grapher, -10).status_code == 200


def test_fapi2_ensure_dpopproof_with_iat_10seconds_after_succeeds(fapi, grapher):
    assert _token_with_iat(grapher, 10).status_code == 200


def test_fapi2_ensure_mismatched_dpop_jkt_fails(fapi, grapher):
    pushed, _ = push(grapher, proof=DPoPKey(), dpop_jkt=DPoPKey().jkt)
    refused(pushed, "invalid_dpop_proof")


def test_fapi2_ensure_token_endpoint_fails_with_mismatched_dpop_proof_jkt(fapi, ana, grapher):
    pushed, verifier = push(grapher, proof=grapher.dpop)
    params = authorize(grapher, ana, pushed.json()["request_uri"])
    refused(redeem(grapher, params["code"], verifier, DPoPKey()), "invalid_dpop_proof")


def test_fapi2_ensure_token_endpoint_fails_with_mismatched_dpop_jkt(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana, dpop_jkt=grapher.dpop.jkt)
    refused(redeem(grapher, params["code"], verifier, DPoPKey()), "invalid_dpop_proof")


def test_fapi2_ensure_dpopproof_at_par_endpoint_binding_success(fapi, ana, grapher):
    pushed, verifier = push(grapher, proof=grapher.dpop)
    params = authorize(grapher, ana, pushed.json()["request_uri"])
    assert redeem(grapher, params["code"], verifier, grapher.dpop).json()["token_type"] == "DPoP"


def test_fapi2_ensure_dpop_auth_code_binding_success(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana, dpop_jkt=grapher.dpop.jkt)
    assert redeem(grapher, params["code"], verifier, grapher.dpop).json()["token_type"] == "DPoP"


def test_fapi2_ensure_registered_redirect_uri(fapi, grapher):
    refused(push(grapher, redirect_uri="https://attacker.example/callback")[0], "invalid_request")


def test_fapi2_ensure_unsigned_authorization_request_without_using_par_fails(fapi, ana, grapher):
    url, _ = request_url(fapi, grapher.app)
    params = response_params(ana.http.get(url, allow_redirects=False))
    assert params["error"] == "invalid_request" and params["iss"] == fapi.url


def test_fapi2_ensure_redirect_uri_in_authorization_request(fapi, grapher):
    refused(push(grapher, redirect_uri=None)[0], "invalid_request")


def test_fapi2_ensure_response_type_code_idtoken_fails(fapi, grapher):
    refused(push(grapher, response_type="code id_token")[0], "unsupported_response_type")


def test_fapi2_ensure_response_type_token_fails(fapi, grapher):
    refused(push(grapher, response_type="token")[0], "unsupported_response_type")


@pytest.fixture
def second(fapi) -> App:
    """The suite's ``client2``."""
    return make_app(fapi, key=new_key("EC"))


def test_fapi2_ensure_client_id_in_token_endpoint(fapi, ana, grapher, second):
    params, verifier = signed_in(grapher, ana)
    response = requests.post(f"{fapi.url}/token", timeout=10, headers={
        "DPoP": grapher.dpop.proof("POST", f"{fapi.url}/token")}, data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": second.client_id,
        "client_assertion_type": JWT_BEARER, "client_assertion": grapher.app.assertion()})
    refused(response, "invalid_client", 401)


def test_fapi2_ensure_holder_of_key_required(fapi, ana, grapher, bound):
    params, verifier = signed_in(grapher, ana)
    refused(redeem(grapher, params["code"], verifier, None), "invalid_dpop_proof")
    as_bearer = requests.get(f"{fapi.url}/userinfo", headers={"Authorization": f"Bearer {bound}"}, timeout=10)
    refused(as_bearer, "invalid_token", 401)


def test_fapi2_ensure_authorization_code_is_bound_to_client(fapi, ana, grapher, second):
    params, verifier = signed_in(grapher, ana)
    stolen = FapiApp(fapi, second)
    refused(redeem(stolen, params["code"], verifier, stolen.dpop), "invalid_grant")


def test_fapi2_attempt_reuse_authorization_code_after_one_second(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana)
    first = redeem(grapher, params["code"], verifier, grapher.dpop)
    assert first.status_code == 200
    time.sleep(1)
    refused(redeem(grapher, params["code"], verifier, grapher.dpop), "invalid_grant")
    assert grapher.userinfo(first.json()["access_token"]).status_code == 401  # revoked


def test_fapi2_ensure_token_endpoint_fails_with_expired_auth_code(fapi, ana, grapher):
    """Also ``fapi2-security-profile-final-par-attempt-to-use-expired-request_uri``: one wait
    of just over a minute lets both a code (at most 60 s, FAPI 2.0 §5.3.2.1) and a pushed
    request (``expires_in`` 60, RFC 9126 §2.2) expire."""
    params, verifier = signed_in(grapher, ana)
    waiting, _ = push(grapher)
    assert 5 <= waiting.json()["expires_in"] <= 60
    time.sleep(61)
    refused(redeem(grapher, params["code"], verifier, grapher.dpop), "invalid_grant")
    url = authorization_url(fapi, client_id=grapher.app.client_id, request_uri=waiting.json()["request_uri"])
    shown_not_redirected(ana.http.get(url, allow_redirects=False), "invalid_request_uri")


def _assertion(app: App, header: dict[str, Any] | None = None, **claims: Any) -> str:
    assert app.key is not None
    now = int(time.time())
    payload = {"iss": app.client_id, "sub": app.client_id, "aud": app.server.url, "iat": now,
               "exp": now + 60, "jti": secrets.token_urlsafe(16), **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    alg = (header or {}).get("alg", "PS256")
    return jwt.encode({"alg": alg, "kid": app.key.kid, **(header or {})}, payload, app.key, algorithms=[alg])


def _par_with(grapher: FapiApp, assertion: str | None) -> requests.Response:
    _, challenge = pkce()
    data = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
            "client_id": grapher.app.client_id,
            "code_challenge": challenge, "code_challenge_method": "S256"}
    if assertion is not None:
        data.update(client_assertion_type=JWT_BEARER, client_assertion=assertion)
    return requests.post(f"{grapher.server.url}/par", data=data, timeout=10)


def _token_with(grapher: FapiApp, ana: PersonAgent, assertion: str | None) -> requests.Response:
    """A code exchange (with its DPoP proof) whose only fault is the client assertion."""
    params, verifier = signed_in(grapher, ana)
    data = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": grapher.app.client_id}
    if assertion is not None:
        data.update(client_assertion_type=JWT_BEARER, client_assertion=assertion)
    return requests.post(f"{grapher.server.url}/token", data=data, timeout=10, headers={
        "DPoP": grapher.dpop.proof("POST", f"{grapher.server.url}/token")})


def test_fapi2_ensure_signed_client_assertion_with_rs256_fails(fapi, ana, grapher):
    refused(_token_with(grapher, ana, _assertion(grapher.app, {"alg": "RS256"})), "invalid_client", 401)


def test_fapi2_ensure_client_assertion_in_token_endpoint(fapi, ana, grapher):
    refused(_token_with(grapher, ana, None), "invalid_client", 401)


def test_fapi2_ensure_client_assertion_with_exp_is_5_minutes_in_past_fails(fapi, ana, grapher):
    past = int(time.time()) - 300
    expired = _assertion(grapher.app, iat=past - 60, exp=past)
    refused(_token_with(grapher, ana, expired), "invalid_client", 401)


def test_fapi2_ensure_client_assertion_with_wrong_aud_fails(fapi, ana, grapher):
    wrong = _assertion(grapher.app, aud="https://other.example")
    refused(_token_with(grapher, ana, wrong), "invalid_client", 401)


def test_fapi2_ensure_client_assertion_with_no_sub_fails(fapi, ana, grapher):
    refused(_token_with(grapher, ana, _assertion(grapher.app, sub=None)), "invalid_client", 401)


def test_fapi2_par_test_array_as_audience_fails(fapi, grapher):
    refused(_par_with(grapher, _assertion(grapher.app, aud=[fapi.url])), "invalid_client", 401)


def test_fapi2_par_test_par_endpoint_url_as_audience_fails(fapi, grapher):
    refused(_par_with(grapher, _assertion(grapher.app, aud=f"{fapi.url}/par")), "invalid_client", 401)


def test_fapi2_par_test_token_endpoint_url_as_audience_fails(fapi, grapher):
    refused(_par_with(grapher, _assertion(grapher.app, aud=f"{fapi.url}/token")), "invalid_client", 401)


def test_fapi2_par_ensure_jwt_client_assertions_nbf_8_seconds_in_the_future_is_accepted(fapi, grapher):
    soon = int(time.time()) + 8
    assert _par_with(grapher, _assertion(grapher.app, iat=soon, nbf=soon)).status_code == 201


def test_fapi2_par_ensure_jwt_client_assertions_nbf_over_60_seconds_in_the_future_fails(fapi, grapher):
    later = int(time.time()) + 70
    refused(_par_with(grapher, _assertion(grapher.app, iat=later, nbf=later, exp=later + 60)),
            "invalid_client", 401)


# ------------------------------------------------------------------ DPoP negative tests (RFC 9449 §4.3, §7)


def ath(token: str) -> str:
    """RFC 9449 §4.2 ``ath``: the access token's SHA-256, base64url."""
    return b64(hashlib.sha256(token.encode()).digest())


def tampered(signature: str) -> str:
    return signature[:-4] + ("BBBB" if signature.endswith("AAAA") else "AAAA")


def negative_proof(fapi: LiveAS, token: str, key: DPoPKey, case: str) -> str:
    """A proof for ``GET /userinfo`` with ``token``, spoilt (or varied) as ``case`` says."""
    url = f"{fapi.url}/userinfo"
    header: dict[str, Any] = {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.key.as_dict(private=False)}
    claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": "GET", "htu": url,
                              "iat": int(time.time()), "ath": ath(token)}
    if case.startswith("missing-"):
        header.pop(case.removeprefix("missing-"), None)
        claims.pop(case.removeprefix("missing-"), None)
    changes = {
        "invalid-typ": {"typ": "JWT"},
        "private-key-in-jwk": {"jwk": key.key.as_dict(private=True)},
        "extra-claims": {"x-extra": "ignored"},
    }
    header.update(changes.get(case, {}))
    claims.update({
        "wrong-htm": {"htm": "PUT"},
        "htu-with-query-and-fragment": {"htu": f"{url}?a=b#c"},
        "htu-different-url": {"htu": f"{fapi.url}/token"},
        "iat-one-hour-future": {"iat": int(time.time()) + 3600},
        "iat-one-hour-past": {"iat": int(time.time()) - 3600},
        "wrong-ath": {"ath": ath("another token")},
        "extra-claims": {"x-extra": "ignored"},
    }.get(case, {}))
    signer = DPoPKey() if case == "different-key" else key
    if case == "different-key":
        header["jwk"] = signer.key.as_dict(private=False)
    if case == "none-alg":
        return f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}.{b64(json.dumps(claims).encode())}."
    lenient = jws.JWSRegistry(algorithms=[signer.alg], strict_check_header=False)
    proof = jws.serialize_compact({"alg": signer.alg, **header}, json.dumps(claims), signer.key,
                                  registry=lenient)
    head, body, signature = proof.split(".")
    if case == "missing-alg":  # signed, then the alg taken out of the protected header
        head = b64(json.dumps(header).encode())
    if case == "invalid-signature":
        signature = tampered(signature)
    if case == "not-well-formed":
        return f"{head}{body}.{signature}"
    return f"{head}.{body}.{signature}"


ACCEPTED = ("upper-case-header-name", "htu-with-query-and-fragment", "extra-claims")
REFUSED = ("multiple-proofs", "not-well-formed", "missing-typ", "missing-alg", "missing-jwk", "missing-jti",
           "missing-htm", "missing-htu", "missing-iat", "missing-ath", "invalid-typ", "none-alg",
           "invalid-signature", "private-key-in-jwk", "wrong-htm", "htu-different-url",
           "iat-one-hour-future", "iat-one-hour-past", "wrong-ath", "different-key")


@pytest.mark.parametrize("case", ACCEPTED + REFUSED)
def test_fapi2_dpop_negative_tests(fapi, grapher, bound, case):
    proofs = [negative_proof(fapi, bound, grapher.dpop, case)]
    if case == "multiple-proofs":
        proofs.append(grapher.dpop.proof("GET", f"{fapi.url}/userinfo", token=bound))
    headers = HTTPHeaderDict({"Authorization": f"DPoP {bound}"})
    for proof in proofs:  # HTTP header names are case-insensitive (RFC 9110 §5.1)
        headers.add("DPOP" if case == "upper-case-header-name" else "DPoP", proof)
    answer = urllib3.request("GET", f"{fapi.url}/userinfo", headers=headers, timeout=10)
    if case in ACCEPTED:
        assert answer.status == 200, (case, answer.data)
        return
    assert answer.status == 401, (case, answer.status, answer.data)
    assert answer.headers["WWW-Authenticate"].startswith("DPoP error="), case  # RFC 9449 §7.1


def test_fapi2_check_dpop_proof_nbf_exp(fapi, ana, grapher):
    """nbf and exp in a proof are not DPoP claims: accepted, at the token endpoint and the resource."""
    now = int(time.time())
    params, verifier = signed_in(grapher, ana)
    proof = grapher.dpop.proof("POST", f"{fapi.url}/token", nbf=now, exp=now + 300)
    response = grapher.app.post("/token", {"grant_type": "authorization_code", "code": params["code"],
                                           "redirect_uri": REDIRECT, "code_verifier": verifier},
                                headers={"DPoP": proof})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    at_resource = requests.get(f"{fapi.url}/userinfo", timeout=10, headers={
        "Authorization": f"DPoP {token}",
        "DPoP": grapher.dpop.proof("GET", f"{fapi.url}/userinfo", token=token, nbf=now, exp=now + 300)})
    assert at_resource.status_code == 200, at_resource.text


def test_fapi2_dpop_negative_tests_jti_replay(fapi, grapher, bound):
    proof = grapher.dpop.proof("GET", f"{fapi.url}/userinfo", token=bound)
    headers = {"Authorization": f"DPoP {bound}", "DPoP": proof}
    assert requests.get(f"{fapi.url}/userinfo", headers=headers, timeout=10).status_code == 200
    replay = requests.get(f"{fapi.url}/userinfo", headers=headers, timeout=10)
    refused(replay, "invalid_dpop_proof", 401)


def test_fapi2_dpop_negative_tests_rs256(fapi, ana, grapher):
    grapher.dpop = DPoPKey("RSA")
    params, verifier = signed_in(grapher, ana)
    answer = redeem(grapher, params["code"], verifier, grapher.dpop)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    proof = grapher.dpop.proof("GET", f"{fapi.url}/userinfo", token=token, alg="RS256")
    response = requests.get(f"{fapi.url}/userinfo", timeout=10,
                            headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    refused(response, "invalid_dpop_proof", 401)  # FAPI 2.0 §5.4.1


# ------------------------------------------------------------------ refresh, PAR, PKCE


def test_fapi2_refresh_token(fapi, ana, grapher, second):
    params, verifier = signed_in(grapher, ana)
    tokens = redeem(grapher, params["code"], verifier, grapher.dpop).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = grapher.token_request(refresh)
    assert refreshed.status_code == 200 and refreshed.json()["token_type"] == "DPoP"
    assert grapher.userinfo(refreshed.json()["access_token"]).status_code == 200
    thief = FapiApp(fapi, second)
    refused(thief.token_request(refresh), "invalid_grant")


def test_fapi2_par_attempt_reuse_request_uri(fapi, ana, grapher):
    pushed, _ = push(grapher)
    url = authorization_url(fapi, client_id=grapher.app.client_id, request_uri=pushed.json()["request_uri"])
    assert "code" in through_consent(ana, url)
    shown_not_redirected(ana.http.get(url, allow_redirects=False), "invalid_request_uri")


def test_fapi2_par_attempt_to_use_request_uri_for_different_client(fapi, ana, grapher, second):
    pushed, _ = push(grapher)
    url = authorization_url(fapi, client_id=second.client_id, request_uri=pushed.json()["request_uri"])
    shown_not_redirected(ana.http.get(url, allow_redirects=False), "invalid_request_uri")


def test_fapi2_par_authorization_request_containing_request_uri_form_param(fapi, grapher):
    refused(push(grapher, request_uri="urn:ietf:params:oauth:request_uri:abc")[0], "invalid_request")


def test_fapi2_par_attempt_invalid_http_method(fapi):
    response = requests.get(f"{fapi.url}/par", timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


def test_fapi2_par_without_duplicate_parameters(fapi, ana, grapher):
    pushed, verifier = push(grapher)
    params = authorize(grapher, ana, pushed.json()["request_uri"])  # only client_id and request_uri
    assert redeem(grapher, params["code"], verifier, grapher.dpop).status_code == 200


def test_fapi2_par_ensure_pkce_required(fapi, grapher):
    refused(push(grapher, code_challenge=None, code_challenge_method=None)[0], "invalid_request")


def test_fapi2_par_plain_pkce_rejected(fapi, grapher):
    refused(push(grapher, code_challenge="x" * 43, code_challenge_method="plain")[0], "invalid_request")


def test_fapi2_ensure_pkce_code_verifier_required(fapi, ana, grapher):
    params, _ = signed_in(grapher, ana)
    response = grapher.app.post("/token", {"grant_type": "authorization_code", "code": params["code"],
                                           "redirect_uri": REDIRECT},
                                headers={"DPoP": grapher.dpop.proof("POST", f"{fapi.url}/token")})
    refused(response, "invalid_grant")


def test_fapi2_incorrect_pkce_code_verifier_rejected(fapi, ana, grapher):
    params, _ = signed_in(grapher, ana)
    refused(redeem(grapher, params["code"], pkce()[0], grapher.dpop), "invalid_grant")


# ------------------------------------------------------------------ request objects (Message Signing plan)


def _signed_request(grapher: FapiApp, alg: str = "PS256", **claims: Any) -> str:
    app = grapher.app
    assert app.key is not None
    _, challenge = pkce()
    now = int(time.time())
    payload = {"iss": app.client_id, "aud": grapher.server.url, "client_id": app.client_id, "exp": now + 60,
               "nbf": now, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
               "code_challenge": challenge, "code_challenge_method": "S256", **claims}
    return jwt.encode({"alg": alg, "kid": app.key.kid}, payload, app.key, algorithms=[alg])


def test_fapi2_ensure_expired_request_object_fails(fapi, grapher):
    past = int(time.time()) - 600
    refused(grapher.app.post("/par", {"request": _signed_request(grapher, exp=past, nbf=past - 60)}),
            "invalid_request_object")


def test_fapi2_ensure_request_object_with_bad_aud_fails(fapi, grapher):
    refused(grapher.app.post("/par", {"request": _signed_request(grapher, aud="https://other.example")}),
            "invalid_request_object")


def test_fapi2_ensure_request_object_without_exp_fails(fapi, grapher):
    refused(grapher.app.post("/par", {"request": _signed_request(grapher, exp=None)}),
            "invalid_request_object")


def test_fapi2_ensure_signed_request_object_with_rs256_fails(fapi, grapher):
    refused(grapher.app.post("/par", {"request": _signed_request(grapher, alg="RS256")}),
            "invalid_request_object")


def test_fapi2_ensure_request_object_without_redirect_uri_fails(fapi, grapher):
    refused(grapher.app.post("/par", {"request": _signed_request(grapher, redirect_uri=None)}),
            "invalid_request")


def test_fapi2_ensure_server_accepts_request_object_with_multiple_aud(fapi, grapher):
    signed = _signed_request(grapher, aud=[fapi.url, "https://other.example"])
    assert grapher.app.post("/par", {"request": signed}).status_code == 201


def test_fapi2_ensure_request_object_with_nbf_8_seconds_in_the_future_is_accepted(fapi, grapher):
    signed = _signed_request(grapher, nbf=int(time.time()) + 8)
    assert grapher.app.post("/par", {"request": signed}).status_code == 201


def test_fapi2_ensure_request_object_with_exp_over_60_fails(fapi, grapher):
    """FAPI 2.0 Message Signing §5.3.1: exp at most 60 minutes after nbf."""
    signed = _signed_request(grapher, exp=int(time.time()) + 3700)
    refused(grapher.app.post("/par", {"request": signed}), "invalid_request_object")


def test_fapi2_par_reject_request_uri_in_par_authorization_request(fapi, grapher):
    signed = _signed_request(grapher, request_uri="urn:ietf:params:oauth:request_uri:abc")
    refused(grapher.app.post("/par", {"request": signed}), "invalid_request_object")


def test_fapi2_ensure_request_object_signature_algorithm_is_not_none(fapi, grapher):
    signed = _signed_request(grapher)
    unsigned = f"{NONE_HEADER}.{signed.split('.')[1]}."
    refused(grapher.app.post("/par", {"request": unsigned}), "invalid_request_object")


def test_fapi2_ensure_request_object_with_invalid_signature_fails(fapi, grapher):
    head, body, signature = _signed_request(grapher).split(".")
    refused(grapher.app.post("/par", {"request": f"{head}.{body}.{tampered(signature)}"}),
            "invalid_request_object")


# ------------------------------------------------------------------ grant management (client-authenticated)


def query_grant(app: App, grant_id: str) -> requests.Response:
    """``GET /grants/{id}``, authenticated with a client assertion (no access token: no DPoP)."""
    return requests.get(f"{app.server.url}/grants/{grant_id}", timeout=10,
                        data={"client_assertion_type": JWT_BEARER, "client_assertion": app.assertion()})


def test_fapi2_grant_management_ensure_query_nonexistent_grant_fails(fapi, grapher):
    refused(query_grant(grapher.app, secrets.token_urlsafe(16)), "invalid_grant_id", 404)


def test_fapi2_grant_management_ensure_wrong_client_cannot_query_grant(fapi, ana, grapher, second):
    params, verifier = signed_in(grapher, ana)
    grant_id = redeem(grapher, params["code"], verifier, grapher.dpop).json()["grant_id"]
    refused(query_grant(second, grant_id), "invalid_grant_id", 404)
    mine = query_grant(grapher.app, grant_id)
    assert mine.status_code == 200 and mine.json()["grant_id"] == grant_id


def test_fapi2_grant_management_ensure_query_after_revoke_fails(fapi, ana, grapher):
    params, verifier = signed_in(grapher, ana)
    grant_id = redeem(grapher, params["code"], verifier, grapher.dpop).json()["grant_id"]
    revoked = requests.delete(f"{fapi.url}/grants/{grant_id}", timeout=10, data={
        "client_assertion_type": JWT_BEARER, "client_assertion": grapher.app.assertion()})
    assert revoked.status_code == 204
    refused(query_grant(grapher.app, grant_id), "invalid_grant_id", 404)


def test_fapi2_grant_management_ensure_wrong_client_cannot_revoke_grant(fapi, ana, grapher, second):
    params, verifier = signed_in(grapher, ana)
    grant_id = redeem(grapher, params["code"], verifier, grapher.dpop).json()["grant_id"]
    revoked = requests.delete(f"{fapi.url}/grants/{grant_id}", timeout=10, data={
        "client_assertion_type": JWT_BEARER, "client_assertion": second.assertion()})
    refused(revoked, "invalid_grant_id", 404)
    assert query_grant(grapher.app, grant_id).status_code == 200


def test_fapi2_grant_management_ensure_invalid_grant_id_fails(fapi, ana, grapher):
    params, _ = signed_in(grapher, ana, grant_management_action="merge", grant_id="no-such-grant")
    assert params["error"] == "invalid_grant_id" and params["iss"] == fapi.url

