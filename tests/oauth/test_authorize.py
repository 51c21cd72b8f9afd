"""The authorization endpoint: what is shown, what is redirected, and always with state and iss."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fixtures.aggregator import PersonAgent
from tests.oauth.apps import (
    DATA,
    INITIAL_ACCESS_TOKEN,
    REDIRECT,
    assert_error_redirect,
    authorization_url,
    code_flow,
    decide,
    exchange,
    make_app,
    new_key,
    pkce,
    response_params,
    seed_registration,
    signed_up,
    walk,
)


def assert_shown_not_redirected(response: requests.Response, error: str) -> None:
    assert response.status_code == 400, response.status_code
    assert "Location" not in response.headers
    assert "text/html" in response.headers["Content-Type"]
    assert error in response.text


def plain_request(server, app, **overrides: str) -> str:
    _, challenge = pkce()
    params = {"client_id": app.client_id, "response_type": "code", "redirect_uri": REDIRECT,
              "scope": f"openid {DATA}", "state": "st-1", "code_challenge": challenge,
              "code_challenge_method": "S256", **overrides}
    return authorization_url(server, **{k: v for k, v in params.items() if v is not None})


def test_a_redirect_uri_mismatch_is_shown_never_redirected(server, nat):
    app = make_app(server)
    for bad in ("https://app.example/callback/", "https://app.example/callback?x=1",
                "https://evil.example/callback", "HTTPS://app.example/callback"):
        response = nat.http.get(plain_request(server, app, redirect_uri=bad), allow_redirects=False)
        assert_shown_not_redirected(response, "invalid_request")


def test_an_unknown_or_missing_client_is_shown(server, nat):
    app = make_app(server)
    for client_id in ("nobody", None):
        response = nat.http.get(plain_request(server, app, client_id=client_id), allow_redirects=False)
        assert_shown_not_redirected(response, "invalid_request")


def test_errors_after_the_redirect_uri_go_back_with_state_and_iss(server, nat):
    app = make_app(server)
    cases = {
        "unsupported_response_type": {"response_type": "token"},
        "invalid_scope": {"scope": "openid admin"},
        "invalid_request": {"code_challenge_method": "plain"},
    }
    for error, overrides in cases.items():
        response = nat.http.get(plain_request(server, app, **overrides), allow_redirects=False)
        assert_error_redirect(response, server, error)
    repeated = nat.http.get(plain_request(server, app) + "&scope=openid", allow_redirects=False)
    assert_shown_not_redirected(repeated, "invalid_request")  # can't tell which value counts


def test_pkce_is_required_for_public_clients_and_s256_only(server, nat):
    app = make_app(server, token_endpoint_auth_method="none")
    missing = nat.http.get(plain_request(server, app, code_challenge=None, code_challenge_method=None),
                           allow_redirects=False)
    assert_error_redirect(missing, server, "invalid_request")
    plain = nat.http.get(plain_request(server, app, code_challenge="x" * 43,
                                       code_challenge_method="plain"), allow_redirects=False)
    assert_error_redirect(plain, server, "invalid_request")
    malformed = nat.http.get(plain_request(server, app, code_challenge="short"), allow_redirects=False)
    assert_error_redirect(malformed, server, "invalid_request")


def test_a_person_not_logged_in_logs_in_and_comes_back_without_params_in_next(server):
    app = make_app(server)
    agent = PersonAgent(server.url)
    verifier, challenge = pkce()
    start = agent.http.get(plain_request(server, app, code_challenge=challenge), allow_redirects=False)
    assert start.status_code == 303
    login = start.headers["Location"]
    assert login.startswith("/login?next=")
    assert "redirect_uri" not in login and "code_challenge" not in login
    next_path = requests.utils.unquote(login.split("next=", 1)[1])
    response = agent.post_form(f"/signup?next={quote(next_path)}", {"username": "nat",
                               "password": "correct horse battery staple", "next": next_path},
                               form_page="/signup")
    assert response.status_code == 302 and response.headers["Location"] == next_path
    page = walk(agent, next_path)
    assert page.status_code == 200 and 'name="decision"' in page.text
    code = response_params(decide(agent, page))["code"]
    assert exchange(app, code, verifier).status_code == 200


def test_a_pending_request_is_bound_to_the_browser_that_started_it(server, nat):
    app = make_app(server)
    start = nat.http.get(plain_request(server, app), allow_redirects=False)
    resume = start.headers["Location"]
    thief = PersonAgent(server.url)
    thief.signup("mallory")
    stolen = thief.http.get(thief.url(resume), allow_redirects=False)
    assert_shown_not_redirected(stolen, "another browser")


def test_prompt_none_without_a_session_or_consent(server, nat):
    app = make_app(server)
    anonymous = PersonAgent(server.url)
    response = anonymous.http.get(plain_request(server, app, prompt="none"), allow_redirects=False)
    assert_error_redirect(response, server, "login_required")
    response = nat.http.get(plain_request(server, app, prompt="none"), allow_redirects=False)
    assert_error_redirect(response, server, "consent_required")
    combined = nat.http.get(plain_request(server, app, prompt="none login"), allow_redirects=False)
    assert_error_redirect(combined, server, "invalid_request")


def test_an_existing_grant_skips_the_consent_page_unless_prompt_consent(server, nat):
    app = make_app(server)
    seed_registration(server, nat, "Bank of Astoria")
    first, _ = code_flow(server, app, nat)
    assert "code" in first
    again = nat.http.get(plain_request(server, app, scope="openid accounts:read"),
                         allow_redirects=False)
    assert "code" in response_params(again), "a subset of the granted scopes needs no new consent"
    asked = walk(nat, plain_request(server, app, prompt="consent"))
    assert asked.status_code == 200 and 'name="decision"' in asked.text
    wider = walk(nat, plain_request(server, app, scope=f"openid offline_access {DATA}"))
    assert wider.status_code == 200 and 'name="decision"' in wider.text


def test_deny_sends_access_denied(server, nat):
    app = make_app(server)
    page = walk(nat, plain_request(server, app))
    assert_error_redirect(decide(nat, page, "deny"), server, "access_denied")
    assert server.services.store.grants.for_person(
        server.services.store.people.find_by_username("nat").id) == []


def test_prompt_login_and_max_age_ask_for_a_fresh_login(server, nat):
    app = make_app(server)
    for overrides in ({"prompt": "login"}, {"max_age": "0"}):
        time.sleep(1.1)  # auth_time has a one-second resolution
        start = nat.http.get(plain_request(server, app, **overrides), allow_redirects=False)
        login = walk(nat, start.headers["Location"])
        assert login.status_code == 200 and 'action="/login"' in login.text, overrides
        # logging in again leads on to the consent page (no loop, even with max_age=0)
        next_path = requests.utils.unquote(start.headers["Location"].split("next=", 1)[1])
        again = nat.post_form("/login", {"username": "nat", "password": "correct horse battery staple",
                                         "next": next_path})
        assert again.headers["Location"] == next_path
        page = walk(nat, next_path)
        assert 'name="decision"' in page.text, overrides
    # logging in again satisfies prompt=login, and auth_time goes into the ID token for max_age
    verifier, challenge = pkce()
    start = nat.http.get(plain_request(server, app, max_age="60", code_challenge=challenge),
                         allow_redirects=False)
    page = walk(nat, start.headers["Location"])
    code = response_params(decide(nat, page))["code"]
    tokens = exchange(app, code, verifier).json()
    claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(
        requests.get(f"{server.url}/jwks", timeout=10).json())).claims
    assert abs(claims["auth_time"] - time.time()) < 30


def test_response_modes_fragment_and_form_post(server, nat):
    app = make_app(server)
    seed_registration(server, nat, "Bank of Astoria")
    code_flow(server, app, nat)  # consent once
    fragment = nat.http.get(plain_request(server, app, response_mode="fragment"), allow_redirects=False)
    location = urlsplit(fragment.headers["Location"])
    assert not location.query and "code=" in location.fragment and "iss=" in location.fragment
    form_post = nat.http.get(plain_request(server, app, response_mode="form_post"),
                             allow_redirects=False)
    assert form_post.status_code == 200
    assert f'action="{REDIRECT}"' in form_post.text
    assert 'name="code"' in form_post.text and 'name="state" value="st-1"' in form_post.text
    assert f'name="iss" value="{server.url}"' in form_post.text
    assert "<script>" not in form_post.text and "oauth-form-post.js" in form_post.text
    assert "script-src 'self'" in form_post.headers["Content-Security-Policy"]
    assert 'type="submit"' in form_post.text
    assert nat.http.get(f"{server.url}/static/oauth-form-post.js").status_code == 200
    bad_mode = nat.http.get(plain_request(server, app, response_mode="web_message"),
                            allow_redirects=False)
    assert_error_redirect(bad_mode, server, "invalid_request")


def test_code_id_token_returns_an_id_token_with_c_hash_and_s_hash(server, nat):
    app = make_app(server, response_types=["code", "code id_token"], id_token_signed_response_alg="ES256")
    page = walk(nat, plain_request(server, app, response_type="code id_token", nonce="n-1",
                                   scope="openid"))
    params = response_params(decide(nat, page))
    assert params["iss"] == server.url and params["state"] == "st-1"
    token = jwt.decode(params["id_token"], KeySet.import_key_set(
        requests.get(f"{server.url}/jwks", timeout=10).json()))
    assert token.header["alg"] == "ES256"
    assert token.claims["nonce"] == "n-1" and token.claims["c_hash"] and token.claims["s_hash"]
    no_nonce = nat.http.get(plain_request(server, app, response_type="code id_token", scope="openid"),
                            allow_redirects=False)
    assert_error_redirect(no_nonce, server, "invalid_request")
    in_query = nat.http.get(plain_request(server, app, response_type="code id_token", nonce="n",
                                          scope="openid", response_mode="query"), allow_redirects=False)
    assert "#" in in_query.headers["Location"], "an ID token never goes in the query"
    assert_error_redirect(in_query, server, "invalid_request")


def test_the_claims_parameter_is_honoured(server, nat):
    app = make_app(server)
    claims = '{"userinfo":{"preferred_username":null},"id_token":{"preferred_username":null,' \
             '"auth_time":{"essential":true}}}'
    params, verifier = code_flow(server, app, nat, scope="openid", claims=claims)
    tokens = exchange(app, params["code"], verifier).json()
    id_token = jwt.decode(tokens["id_token"], KeySet.import_key_set(
        requests.get(f"{server.url}/jwks", timeout=10).json())).claims
    assert id_token["preferred_username"] == "nat" and "auth_time" in id_token
    info = requests.get(f"{server.url}/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info == {"sub": id_token["sub"], "preferred_username": "nat"}
    bad = nat.http.get(plain_request(server, app, claims="{not json"), allow_redirects=False)
    assert_error_redirect(bad, server, "invalid_request")


# ------------------------------------------------------------------ request objects and PAR


def test_a_signed_request_object_is_the_request(server, nat):
    app = make_app(server, key=new_key("RSA"))
    verifier, challenge = pkce()
    signed = app.request_object(response_type="code", redirect_uri=REDIRECT, scope="openid",
                                state="st-1", code_challenge=challenge, code_challenge_method="S256")
    page = walk(nat, authorization_url(server, client_id=app.client_id, request=signed,
                                       scope="openid offline_access"))
    params = response_params(decide(nat, page))
    tokens = exchange(app, params["code"], verifier).json()
    assert tokens["scope"] == "openid", "parameters outside the request object are ignored"


def test_unsigned_or_badly_signed_request_objects_are_refused(server, nat):
    app = make_app(server, key=new_key("RSA"))
    now = int(time.time())
    claims = {"iss": app.client_id, "aud": server.url, "exp": now + 300, "client_id": app.client_id,
              "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid", "state": "st-1"}

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    unsigned = b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims).encode()) + "."
    intruder = new_key("RSA")
    forged = jwt.encode({"alg": "PS256", "kid": app.key.kid}, claims, intruder, algorithms=["PS256"])
    expired = app.request_object(**{**claims, "exp": now - 600})
    wrong_audience = app.request_object(**{**claims, "aud": "https://other.example"})
    for value in (unsigned, forged, expired, wrong_audience, "garbage"):
        response = nat.http.get(authorization_url(server, client_id=app.client_id, request=value,
                                                  redirect_uri=REDIRECT), allow_redirects=False)
        assert_shown_not_redirected(response, "invalid_request_object")


def test_a_request_uri_works_once(server, nat):
    app = make_app(server)
    verifier, challenge = pkce()
    pushed = app.post("/par", {"client_id": app.client_id, "response_type": "code",
                               "redirect_uri": REDIRECT, "scope": "openid", "state": "st-1",
                               "code_challenge": challenge, "code_challenge_method": "S256"})
    assert pushed.status_code == 201, pushed.text
    url = authorization_url(server, client_id=app.client_id, request_uri=pushed.json()["request_uri"])
    page = walk(nat, url)
    assert page.status_code == 200
    reused = nat.http.get(url, allow_redirects=False)
    assert_shown_not_redirected(reused, "invalid_request_uri")
    params = response_params(decide(nat, page))
    assert exchange(app, params["code"], verifier).status_code == 200
    other = make_app(server)
    pushed = app.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                               "code_challenge": challenge, "code_challenge_method": "S256"})
    stolen = nat.http.get(authorization_url(server, client_id=other.client_id,
                                            request_uri=pushed.json()["request_uri"]),
                          allow_redirects=False)
    assert_shown_not_redirected(stolen, "invalid_request_uri")


def test_par_validates_like_the_authorization_endpoint(server):
    app = make_app(server)
    _, challenge = pkce()
    base = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
            "code_challenge": challenge, "code_challenge_method": "S256"}
    cases = {
        "invalid_request": {"redirect_uri": "https://evil.example/cb"},
        "invalid_scope": {"scope": "admin"},
        "unsupported_response_type": {"response_type": "token"},
    }
    for error, overrides in cases.items():
        response = app.post("/par", {**base, **overrides})
        assert response.status_code == 400 and response.json()["error"] == error, response.text
    nested = app.post("/par", {**base, "request_uri": "urn:ietf:params:oauth:request_uri:x"})
    assert nested.status_code == 400 and nested.json()["error"] == "invalid_request"
    anonymous = requests.post(f"{server.url}/par", data=base, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"


def test_par_can_be_required_per_client(server, nat):
    strict = make_app(server, require_pushed_authorization_requests=True)
    response = nat.http.get(plain_request(server, strict), allow_redirects=False)
    assert_error_redirect(response, server, "invalid_request")


def test_par_can_be_required_for_every_client(make_as):
    server = make_as(AGGREGATOR_REQUIRE_PAR="true", AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = make_app(server)
    nat = signed_up(server)
    response = nat.http.get(plain_request(server, app), allow_redirects=False)
    assert_error_redirect(response, server, "invalid_request")
    _, challenge = pkce()
    pushed = app.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                               "state": "st-1", "code_challenge": challenge,
                               "code_challenge_method": "S256"})
    page = walk(nat, authorization_url(server, client_id=app.client_id,
                                       request_uri=pushed.json()["request_uri"]))
    assert page.status_code == 200 and 'name="decision"' in page.text
