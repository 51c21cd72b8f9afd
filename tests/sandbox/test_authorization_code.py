"""A client connects a customer at an institution: authorization code + PKCE, end to end."""

from __future__ import annotations

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.fixtures.sandbox import csrf_token
from tests.sandbox.flows import REDIRECT_URI, api_get, connect, oauth_client, query, token_request


def authorization_url(bank, institution="astoria", **params) -> str:
    """An authorization request URL with PKCE S256 unless ``params`` override it."""
    defaults = {
        "response_type": "code",
        "client_id": bank.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "accounts transactions",
        "state": "xyz",
        "code_challenge": create_s256_code_challenge("v" * 43),
        "code_challenge_method": "S256",
    }
    defaults.update(params)
    query_string = {k: v for k, v in defaults.items() if v is not None}
    return requests.Request("GET", f"{bank.issuer(institution)}/authorize", params=query_string).prepare().url


def code_for(bank, url: str, username: str = "alice") -> str:
    return query(bank.login_and_approve(url, username=username))["code"]


def test_a_customer_connects_with_pkce_and_the_client_reads_their_data(sandbox_bank):
    client, token = connect(sandbox_bank, "norma", username="nat")

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == "accounts balances transactions"
    assert len(token["access_token"]) >= 43 and len(token["refresh_token"]) >= 43
    userinfo = api_get(f"{sandbox_bank.issuer('norma')}/userinfo", token["access_token"]).json()
    assert userinfo["name"] == "nat"
    assert userinfo["sub"].isdigit() and len(userinfo["sub"]) == 7
    assert userinfo["endpoint"] == f"{sandbox_bank.url}/norma/users/{userinfo['sub']}"
    assert token["endpoint"] == userinfo["endpoint"]
    accounts = client.get(f"{token['endpoint']}/accounts").json()["data"]
    assert {a["type"] for a in accounts} == {"investment"}


def test_client_secret_post_works_as_well_as_basic(sandbox_bank):
    _, token = connect(sandbox_bank, "monami", auth_method="client_secret_post")
    assert token["access_token"]


def test_the_redirect_echoes_state_and_names_the_issuer(sandbox_bank):
    callback = sandbox_bank.login_and_approve(authorization_url(sandbox_bank, state="s-1"))
    assert callback.startswith(REDIRECT_URI + "?")
    params = query(callback)
    assert params["state"] == "s-1"
    assert params["iss"] == sandbox_bank.issuer("astoria")  # RFC 9207


def test_a_customer_who_denies_sends_access_denied_back(sandbox_bank):
    callback = sandbox_bank.login_and_approve(
        authorization_url(sandbox_bank, state="s-2"), decision="deny"
    )
    params = query(callback)
    assert params["error"] == "access_denied"
    assert params["state"] == "s-2"
    assert params["iss"] == sandbox_bank.issuer("astoria")
    assert "code" not in params


def test_the_login_page_has_labelled_fields_and_rejects_a_wrong_password(sandbox_bank):
    browser = requests.Session()
    url = authorization_url(sandbox_bank)
    page = browser.get(url, timeout=10)
    assert page.status_code == 200
    for field in ("username", "password"):
        assert f'name="{field}"' in page.text and f'<label for="{field}"' in page.text
    wrong = browser.post(
        url, data={"csrf_token": csrf_token(page.text), "username": "a", "password": "nope"},
        timeout=10,
    )
    assert wrong.status_code == 400
    assert "Wrong username or password" in wrong.text
    assert 'name="decision"' not in wrong.text


def test_the_approval_page_shows_the_institution_and_scopes(sandbox_bank):
    browser = requests.Session()
    url = authorization_url(sandbox_bank, "lastish", scope="accounts balances")
    page = browser.get(url, timeout=10)
    consent = browser.post(
        url, data={"csrf_token": csrf_token(page.text), "username": "al", "password": "sandbox"},
        timeout=10,
    )
    assert "Lastish Fundco" in consent.text
    assert "<code>accounts</code>" in consent.text and "<code>balances</code>" in consent.text
    assert "<code>transactions</code>" not in consent.text
    assert 'name="decision" value="allow"' in consent.text
    assert 'name="decision" value="deny"' in consent.text


def test_forms_without_the_csrf_token_are_refused(sandbox_bank):
    browser = requests.Session()
    url = authorization_url(sandbox_bank)
    browser.get(url, timeout=10)
    login = browser.post(url, data={"username": "a", "password": "sandbox"}, timeout=10)
    assert login.status_code == 400
    decision = browser.post(url, data={"decision": "allow", "csrf_token": "forged"}, timeout=10)
    assert decision.status_code == 400


def test_approval_requires_signing_in_for_that_same_request(sandbox_bank):
    browser = requests.Session()
    first = authorization_url(sandbox_bank, state="one")
    page = browser.get(first, timeout=10)
    token = csrf_token(page.text)
    browser.post(first, data={"csrf_token": token, "username": "a", "password": "sandbox"},
                 timeout=10)
    # Same session, a different authorization request: the sign-in does not carry over.
    other = authorization_url(sandbox_bank, state="two")
    answer = browser.post(other, data={"csrf_token": token, "decision": "allow"},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_pkce_is_required(sandbox_bank):
    answer = requests.get(
        authorization_url(sandbox_bank, code_challenge=None, code_challenge_method=None),
        allow_redirects=False, timeout=10,
    )
    assert answer.status_code == 302
    params = query(answer.headers["Location"])
    assert params["error"] == "invalid_request"
    assert params["state"] == "xyz"
    assert params["iss"] == sandbox_bank.issuer("astoria")


def test_the_plain_pkce_method_is_refused(sandbox_bank):
    for method in ("plain", None):  # an absent method means plain (RFC 7636 §4.3)
        answer = requests.get(
            authorization_url(sandbox_bank, code_challenge="v" * 43, code_challenge_method=method),
            allow_redirects=False, timeout=10,
        )
        assert query(answer.headers["Location"])["error"] == "invalid_request"


def test_a_wrong_or_missing_code_verifier_gets_no_token(sandbox_bank):
    code = code_for(sandbox_bank, authorization_url(sandbox_bank))
    wrong = token_request(sandbox_bank, grant_type="authorization_code", code=code,
                          redirect_uri=REDIRECT_URI, code_verifier="w" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code = code_for(sandbox_bank, authorization_url(sandbox_bank))
    missing = token_request(sandbox_bank, grant_type="authorization_code", code=code,
                            redirect_uri=REDIRECT_URI)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_the_token_request_must_repeat_the_same_redirect_uri(sandbox_bank):
    code = code_for(sandbox_bank, authorization_url(sandbox_bank))
    answer = token_request(sandbox_bank, grant_type="authorization_code", code=code,
                           redirect_uri="http://127.0.0.1:9/other", code_verifier="v" * 43)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_non_loopback_redirect_uri_gets_an_error_page_not_a_redirect(sandbox_bank):
    for uri in ("https://evil.example/cb", "http://127.0.0.1.evil.example/cb",
                "http://127.0.0.1:8/cb#frag", "javascript:alert(1)"):
        answer = requests.get(authorization_url(sandbox_bank, redirect_uri=uri),
                              allow_redirects=False, timeout=10)
        assert answer.status_code == 400, uri
        assert "Location" not in answer.headers
        assert "text/html" in answer.headers["Content-Type"]


def test_an_unknown_client_gets_an_error_page(sandbox_bank):
    answer = requests.get(authorization_url(sandbox_bank, client_id="stranger"),
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_an_unknown_scope_is_sent_back_as_invalid_scope(sandbox_bank):
    answer = requests.get(authorization_url(sandbox_bank, scope="accounts wires"),
                          allow_redirects=False, timeout=10)
    assert query(answer.headers["Location"])["error"] == "invalid_scope"


def test_a_code_works_once_and_its_replay_revokes_what_it_issued(sandbox_bank):
    code = code_for(sandbox_bank, authorization_url(sandbox_bank))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": "v" * 43}
    first = token_request(sandbox_bank, **form)
    assert first.status_code == 200
    replay = token_request(sandbox_bank, **form)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: the tokens from the first redemption are revoked too.
    access = first.json()["access_token"]
    assert api_get(f"{sandbox_bank.issuer('astoria')}/userinfo", access).status_code == 401
    refresh = token_request(sandbox_bank, grant_type="refresh_token",
                            refresh_token=first.json()["refresh_token"])
    assert refresh.json()["error"] == "invalid_grant"


def test_a_code_is_only_good_at_the_institution_that_issued_it(sandbox_bank):
    code = code_for(sandbox_bank, authorization_url(sandbox_bank, "astoria"))
    answer = token_request(sandbox_bank, "monami", grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI, code_verifier="v" * 43)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_the_client_must_authenticate(sandbox_bank):
    code = code_for(sandbox_bank, authorization_url(sandbox_bank))
    answer = requests.post(
        f"{sandbox_bank.issuer('astoria')}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
              "code_verifier": "v" * 43},
        auth=(sandbox_bank.client_id, "wrong-secret"), timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_the_same_username_is_the_same_customer_at_one_institution_only(sandbox_bank):
    ids = {}
    for institution, username in (("astoria", "Nat"), ("astoria", "nat"), ("monami", "nat")):
        _, token = connect(sandbox_bank, institution, username=username)
        ids[(institution, username)] = token["endpoint"].rsplit("/", 1)[1]
    assert ids[("astoria", "Nat")] == ids[("astoria", "nat")]
    assert ids[("astoria", "nat")] != ids[("monami", "nat")]


def test_authlib_client_state_check_passes_with_a_generated_state(sandbox_bank):
    client = oauth_client(sandbox_bank, "lastish")
    verifier = generate_token(48)
    url, state = client.create_authorization_url(
        f"{sandbox_bank.issuer('lastish')}/authorize", code_verifier=verifier
    )
    callback = sandbox_bank.login_and_approve(url)
    token = client.fetch_token(authorization_response=callback, code_verifier=verifier,
                               state=state)
    assert token["scope"] == "accounts balances transactions"
