"""The fake Moneyhub behaves as seeds 000-003 document, driven over HTTP by Authlib/joserfc."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from tests.fixtures.moneyhub import (
    DEFAULT_REDIRECT_URI,
    MoneyhubFake,
    make_client,
    running_moneyhub_fake,
)
from tests.moneyhub.partner import (
    Partner,
    connect_claims,
    consent_claims,
    redirect_params,
)

MODELO = "b9be1fc1e54ae6d4229967411dc28545"
NATIONWIDE = "49afef18908737d682a555dbbe03b830"


@pytest.fixture
def jwt_partner(moneyhub_fake: MoneyhubFake) -> Partner:
    return Partner(moneyhub_fake, moneyhub_fake.jwt_client)


@pytest.fixture
def basic_partner(moneyhub_fake: MoneyhubFake) -> Partner:
    return Partner(moneyhub_fake, moneyhub_fake.basic_client)


def verify_id_token(fake: MoneyhubFake, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(requests.get(f"{fake.issuer}/certs", timeout=5).json())
    alg = decode_header(token)["alg"]
    return jwt.decode(token, keys, algorithms=[alg]).claims


def decode_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


# ------------------------------------------------------------------------ discovery, lists


def test_discovery_names_the_documented_endpoints_and_values(moneyhub_fake: MoneyhubFake):
    doc = requests.get(moneyhub_fake.discovery_url, timeout=5).json()
    issuer = moneyhub_fake.issuer
    assert doc["issuer"] == issuer
    assert doc["authorization_endpoint"] == f"{issuer}/auth"
    assert doc["token_endpoint"] == f"{issuer}/token"
    assert doc["jwks_uri"] == f"{issuer}/certs"
    assert doc["pushed_authorization_request_endpoint"] == f"{issuer}/request"
    assert set(doc["response_types_supported"]) == {"code", "code id_token", "id_token"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "private_key_jwt",
    }
    assert {"mh:con_id", "mh:consent", "mh:cat_type", "sub"} <= set(doc["claims_supported"])
    assert {"id:all", "id:test", "reauth", "refresh", "offline_access"} <= set(
        doc["scopes_supported"]
    )
    keys = requests.get(doc["jwks_uri"], timeout=5).json()["keys"]
    assert {key["kty"] for key in keys} == {"RSA", "EC"}
    assert all("d" not in key for key in keys), "only public keys are published"


def test_identity_service_can_live_under_a_path_prefix():
    with running_moneyhub_fake(identity_prefix="/identity") as fake:
        assert fake.identity_url.endswith("/identity")
        doc = requests.get(fake.discovery_url, timeout=5).json()
        assert doc["issuer"] == fake.issuer == f"{fake.server_url}/identity/oidc"
        partner = Partner(fake, fake.basic_client)
        assert partner.create_user()["userId"]


@pytest.mark.parametrize("kind", ["all", "api", "legacy", "test"])
def test_connection_lists_carry_the_documented_fields(moneyhub_fake: MoneyhubFake, kind: str):
    url = f"{moneyhub_fake.issuer}/.well-known/{kind}-connections"
    banks = requests.get(url, timeout=5).json()
    assert banks
    for bank in banks:
        assert {"id", "name", "type", "bankRef", "iconUrl", "accountTypes", "userTypes"} <= set(
            bank
        )
        assert bank["type"] == kind if kind != "all" else bank["type"] in ("api", "legacy")
        assert bank["iconUrl"] == f"{moneyhub_fake.identity_url}/bank-icons/{bank['bankRef']}"
        assert all({"name", "beta"} == set(t) for t in bank["accountTypes"])


def test_bank_icons_answer_svg_or_404_unless_default_is_asked(moneyhub_fake: MoneyhubFake):
    base = f"{moneyhub_fake.identity_url}/bank-icons"
    found = requests.get(f"{base}/modelo", timeout=5)
    assert found.status_code == 200
    assert found.headers["Content-Type"].startswith("image/svg+xml")
    assert requests.get(f"{base}/mh-test-bank", timeout=5).status_code == 404
    fallback = requests.get(f"{base}/mh-test-bank", params={"defaultIcon": "true"}, timeout=5)
    assert fallback.status_code == 200
    assert requests.get(f"{base}/default", timeout=5).status_code == 200


# ------------------------------------------------------------------------ client authentication


def test_basic_client_gets_a_user_management_token_and_creates_a_user(basic_partner: Partner):
    user = basic_partner.create_user("person-42")
    assert user["clientUserId"] == "person-42"
    assert user["clientId"] == basic_partner.credentials.client_id
    assert len(user["userId"]) == 24

    token = basic_partner.client_credentials("user:read")
    got = requests.get(
        f"{basic_partner.fake.identity_url}/users/{user['userId']}",
        headers={"Authorization": f"Bearer {token}"}, timeout=5,
    )
    assert got.status_code == 200
    assert got.json()["userId"] == user["userId"]


def test_authlib_fetch_token_works_with_private_key_jwt(jwt_partner: Partner):
    token = jwt_partner.session.fetch_token(
        jwt_partner.token_endpoint, grant_type="client_credentials", scope="user:create"
    )
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 600
    assert token["scope"] == "user:create"


def test_wrong_secret_is_invalid_client_with_a_basic_challenge(moneyhub_fake: MoneyhubFake):
    response = requests.post(
        f"{moneyhub_fake.issuer}/token",
        data={"grant_type": "client_credentials", "scope": "user:create"},
        auth=(moneyhub_fake.basic_client.client_id, "not-the-secret"),
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_client_must_use_its_registered_auth_method(moneyhub_fake: MoneyhubFake):
    response = requests.post(
        f"{moneyhub_fake.issuer}/token",
        data={"grant_type": "client_credentials", "scope": "user:create"},
        auth=(moneyhub_fake.jwt_client.client_id, moneyhub_fake.jwt_client.client_secret),
        timeout=5,
    )
    assert response.status_code == 401
    assert "private_key_jwt" in response.json()["error_description"]


def assertion(partner: Partner, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": partner.credentials.client_id,
        "sub": partner.credentials.client_id,
        "aud": partner.fake.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": f"jti-{now}-{time.perf_counter_ns()}",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    assert partner.key is not None
    alg = partner.credentials.signing_alg
    return jwt.encode({"alg": alg, "kid": partner.key.kid}, body, partner.key, algorithms=[alg])


def post_assertion(partner: Partner, token: str) -> requests.Response:
    return requests.post(
        partner.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "scope": "user:read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        },
        timeout=5,
    )


def test_private_key_jwt_accepts_issuer_audience_and_refuses_replayed_jti(jwt_partner: Partner):
    token = assertion(jwt_partner)
    assert post_assertion(jwt_partner, token).status_code == 200
    replay = post_assertion(jwt_partner, token)
    assert replay.status_code == 401
    assert "jti" in replay.json()["error_description"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://elsewhere.example"}, "aud"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"exp": None}, "exp"),
        ({"jti": None}, "jti"),
        ({"iss": "someone-else"}, "iss"),
    ],
)
def test_private_key_jwt_enforces_rfc7523_claims(jwt_partner: Partner, claims, reason):
    response = post_assertion(jwt_partner, assertion(jwt_partner, **claims))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert reason in response.json()["error_description"]


def test_assertion_signed_by_a_stranger_key_is_refused(jwt_partner: Partner):
    stranger = make_client("stranger", "private_key_jwt")[1]
    key = KeySet.import_key_set(stranger.private_jwks).keys[0]
    now = int(time.time())
    claims = {
        "iss": jwt_partner.credentials.client_id, "sub": jwt_partner.credentials.client_id,
        "aud": jwt_partner.token_endpoint, "exp": now + 60, "jti": "x1",
    }
    token = jwt.encode(
        {"alg": "PS256", "kid": jwt_partner.key.kid}, claims, key, algorithms=["PS256"]
    )
    response = post_assertion(jwt_partner, token)
    assert response.status_code == 401
    assert "signature" in response.json()["error_description"]


# ------------------------------------------------------------------------ linking a bank


@pytest.mark.parametrize("which", ["jwt", "basic"])
def test_a_person_connects_a_bank_and_the_id_token_names_the_connection(
    moneyhub_fake: MoneyhubFake, which: str
):
    partner = Partner(moneyhub_fake, moneyhub_fake.clients[which])
    user = partner.create_user()
    params = partner.journey(
        scope=f"openid id:{NATIONWIDE}", state="s-1", nonce="n-1",
        claims=connect_claims(user["userId"]),
    )
    assert params["state"] == "s-1"
    tokens = partner.token(
        grant_type="authorization_code", code=params["code"], redirect_uri=DEFAULT_REDIRECT_URI
    ).json()
    assert tokens["scope"] == "openid", "the code's token carries no data scopes (seed 001)"
    assert "refresh_token" not in tokens
    claims = verify_id_token(moneyhub_fake, tokens["id_token"])
    assert claims["sub"] == user["userId"]
    assert claims["nonce"] == "n-1"
    assert claims["aud"] == partner.credentials.client_id
    assert claims["iss"] == moneyhub_fake.issuer
    assert claims["at_hash"] == half_hash(tokens["access_token"])
    assert claims["mh:con_id"].startswith(f"{NATIONWIDE}:")
    connections = moneyhub_fake.controls.connections(user["userId"])
    assert [c.id for c in connections] == [claims["mh:con_id"]]


def test_chooser_scope_connects_the_bank_the_person_picks(jwt_partner: Partner):
    user = jwt_partner.create_user()
    params = jwt_partner.journey(scope="openid id:test", claims=connect_claims(user["userId"]))
    first = jwt_partner.fake.controls.connections(user["userId"])[0]
    assert first.bank.id == MODELO, "with nobody choosing, the list's first bank"
    jwt_partner.fake.controls.choose_bank("235bd1c410e96b29dd34aa751d5cb054")
    jwt_partner.journey(scope="openid id:test", claims=connect_claims(user["userId"]))
    banks = {c.bank.name for c in jwt_partner.fake.controls.connections(user["userId"])}
    assert banks == {"Modelo Open Banking Mock", "Moneyhub Test Bank (legacy)"}
    assert params["code"]


def test_codes_and_request_uris_are_single_use(jwt_partner: Partner):
    user = jwt_partner.create_user()
    pushed = jwt_partner.push(claims=connect_claims(user["userId"])).json()
    assert pushed["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed["expires_in"] > 0
    first = jwt_partner.authorize(pushed["request_uri"])
    assert first.status_code == 302
    again = jwt_partner.authorize(pushed["request_uri"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_request_uri"

    code = redirect_params(first.headers["Location"])["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": DEFAULT_REDIRECT_URI}
    tokens = jwt_partner.token(**form).json()
    replay = jwt_partner.token(**form)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: the replay revokes what the code issued
    assert jwt_partner.fake.controls.access_token(tokens["access_token"]) is None


def test_code_exchange_needs_the_same_redirect_uri(jwt_partner: Partner):
    user = jwt_partner.create_user()
    params = jwt_partner.journey(claims=connect_claims(user["userId"]))
    response = jwt_partner.token(
        grant_type="authorization_code", code=params["code"], redirect_uri="https://evil.example"
    )
    assert response.json()["error"] == "invalid_grant"


def test_pkce_is_checked_when_a_challenge_was_sent(jwt_partner: Partner):
    user = jwt_partner.create_user()
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    params = jwt_partner.journey(
        claims=connect_claims(user["userId"]),
        code_challenge=challenge.decode(), code_challenge_method="S256",
    )
    form = {"grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": DEFAULT_REDIRECT_URI}
    assert jwt_partner.token(**form, code_verifier="w" * 50).json()["error"] == "invalid_grant"
    params = jwt_partner.journey(
        claims=connect_claims(user["userId"]),
        code_challenge=challenge.decode(), code_challenge_method="S256",
    )
    form["code"] = params["code"]
    assert jwt_partner.token(**form, code_verifier=verifier).status_code == 200


def test_offline_access_with_prompt_consent_gives_a_refresh_token(jwt_partner: Partner):
    user = jwt_partner.create_user()
    params = jwt_partner.journey(
        scope="openid offline_access id:test", prompt="consent",
        claims=connect_claims(user["userId"]),
    )
    tokens = jwt_partner.token(
        grant_type="authorization_code", code=params["code"], redirect_uri=DEFAULT_REDIRECT_URI
    ).json()
    assert tokens["refresh_token"]
    refreshed = jwt_partner.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200
    claims = verify_id_token(jwt_partner.fake, refreshed.json()["id_token"])
    con_id = verify_id_token(jwt_partner.fake, tokens["id_token"])["mh:con_id"]
    assert claims["mh:con_id"] == con_id

    # deleting the connection revokes the grant (seed 001)
    jwt_partner.fake.controls.delete_connection(con_id)
    gone = jwt_partner.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert gone.json()["error"] == "invalid_grant"


def test_offline_access_without_prompt_consent_is_ignored(jwt_partner: Partner):
    """OIDC Core §11."""
    user = jwt_partner.create_user()
    params = jwt_partner.journey(
        scope="openid offline_access id:test", claims=connect_claims(user["userId"])
    )
    tokens = jwt_partner.token(
        grant_type="authorization_code", code=params["code"], redirect_uri=DEFAULT_REDIRECT_URI
    ).json()
    assert "refresh_token" not in tokens


def test_hybrid_response_binds_code_and_state_in_the_fragment(jwt_partner: Partner):
    user = jwt_partner.create_user()
    pushed = jwt_partner.push(
        response_type="code id_token", state="st", nonce="nn",
        claims=connect_claims(user["userId"]),
    ).json()
    location = jwt_partner.authorize(pushed["request_uri"]).headers["Location"]
    assert "?" not in location.split("#")[0].removeprefix(DEFAULT_REDIRECT_URI)
    params = redirect_params(location)
    assert set(params) == {"code", "id_token", "state"}
    claims = verify_id_token(jwt_partner.fake, params["id_token"])
    assert decode_header(params["id_token"])["alg"] == "PS256"
    assert claims["c_hash"] == half_hash(params["code"])
    assert claims["s_hash"] == half_hash("st")
    assert claims["nonce"] == "nn"
    assert "mh:con_id" not in claims, "the front-channel id_token is a detached signature"


def test_form_post_response_mode_renders_an_auto_submitting_form(jwt_partner: Partner):
    user = jwt_partner.create_user()
    pushed = jwt_partner.push(
        response_type="code id_token", response_mode="form_post",
        claims=connect_claims(user["userId"]),
    ).json()
    page = jwt_partner.authorize(pushed["request_uri"])
    assert page.status_code == 200
    assert f'action="{DEFAULT_REDIRECT_URI}"' in page.text
    assert 'name="id_token"' in page.text and 'name="code"' in page.text


def test_a_request_object_may_also_go_straight_to_the_authorization_endpoint(
    jwt_partner: Partner,
):
    user = jwt_partner.create_user()
    token = jwt_partner.request_object(state="direct", claims=connect_claims(user["userId"]))
    response = requests.get(
        f"{jwt_partner.fake.issuer}/auth",
        params={"client_id": jwt_partner.credentials.client_id, "request": token},
        allow_redirects=False, timeout=5,
    )
    assert redirect_params(response.headers["Location"])["state"] == "direct"
    # after the request object verified, Moneyhub's rules answer at the redirect_uri
    bad = jwt_partner.request_object(scope="openid id:test id:api", state="st2",
                                     claims=connect_claims(user["userId"]))
    response = requests.get(
        f"{jwt_partner.fake.issuer}/auth",
        params={"client_id": jwt_partner.credentials.client_id, "request": bad},
        allow_redirects=False, timeout=5,
    )
    params = redirect_params(response.headers["Location"])
    assert params["error"] == "invalid_scope"
    assert params["state"] == "st2"


def test_plain_authorization_parameters_are_refused(jwt_partner: Partner):
    response = requests.get(
        f"{jwt_partner.fake.issuer}/auth",
        params={"client_id": jwt_partner.credentials.client_id, "scope": "openid id:test",
                "response_type": "code", "redirect_uri": DEFAULT_REDIRECT_URI},
        allow_redirects=False, timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# ------------------------------------------------------------------------ PAR refusals


def par_cases() -> list[Any]:
    def sub(uid: str) -> dict[str, Any]:
        return connect_claims(uid)

    def consent(**value: Any):
        return lambda uid: consent_claims(uid, value)

    replace = {"permissionsAction": "replace"}
    return [
        pytest.param({"scope": "openid id:test id:api"}, sub, "invalid_scope", id="two-id-scopes"),
        pytest.param({"scope": "openid"}, sub, "invalid_scope", id="no-id-scope"),
        pytest.param({"scope": "id:test"}, sub, "invalid_scope", id="no-openid"),
        pytest.param({"scope": "openid id:nowhere"}, sub, "invalid_scope", id="unknown-bank"),
        pytest.param({"scope": "openid id:test transactions:read:all transactions:read:in"},
                     sub, "invalid_scope", id="exclusive-transaction-scopes"),
        pytest.param({"redirect_uri": "https://evil.example/cb"}, sub, "invalid_request",
                     id="unregistered-redirect-uri"),
        pytest.param({}, lambda uid: connect_claims("000000000000000000000000"),
                     "invalid_request", id="sub-not-a-user"),
        pytest.param({}, lambda uid: {"id_token": {"sub": {"value": uid}}}, "invalid_request",
                     id="con-id-not-requested"),
        pytest.param({"response_type": "code id_token", "nonce": None}, sub, "invalid_request",
                     id="hybrid-without-nonce"),
        pytest.param({"response_type": "token"}, sub, "unsupported_response_type",
                     id="token-response-type"),
        pytest.param({}, consent(expirationDateTime=in_days(91)), "invalid_request",
                     id="consent-over-90-days"),
        pytest.param({}, consent(expirationDateTime=in_days(-1)), "invalid_request",
                     id="consent-in-the-past"),
        pytest.param({}, consent(transactionFromDateTime=in_days(-365 * 6 - 40)),
                     "invalid_request", id="history-over-72-months"),
        pytest.param({}, consent(transactionFromDateTime=in_days(2)), "invalid_request",
                     id="history-from-the-future"),
        pytest.param({}, consent(permissions=["ReadBalances"], **replace), "invalid_request",
                     id="replace-without-accounts-permission"),
        pytest.param({}, consent(permissions=["ReadAccountsBasic", "ReadTransactionsDetail"],
                                 **replace), "invalid_request",
                     id="transactions-detail-without-credits-or-debits"),
        pytest.param({}, consent(permissions=["ReadEverything"]), "invalid_request",
                     id="unknown-permission"),
        pytest.param({}, consent(permissionsAction="merge"), "invalid_request",
                     id="unknown-permissions-action"),
        pytest.param({}, lambda uid: connect_claims(uid, **{"mh:cat_type": {"value": "x"}}),
                     "invalid_request", id="bad-cat-type"),
        pytest.param({"aud": "https://elsewhere.example"}, sub, "invalid_request_object",
                     id="request-object-wrong-aud"),
        pytest.param({"exp": int(time.time()) - 5}, sub, "invalid_request_object",
                     id="request-object-expired"),
        pytest.param({"client_id": "someone-else"}, sub, "invalid_request_object",
                     id="request-object-other-client"),
    ]


@pytest.mark.parametrize(("overrides", "claims", "error"), par_cases())
def test_par_refuses_requests_breaking_moneyhubs_rules(
    jwt_partner: Partner, overrides: dict[str, Any], claims, error: str
):
    user = jwt_partner.create_user()
    response = jwt_partner.push(**{"claims": claims(user["userId"]), **overrides})
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == error, response.json()
    assert jwt_partner.fake.controls.pushed_requests() == []


def test_par_accepts_a_valid_consent_and_keeps_it_for_the_connection(jwt_partner: Partner):
    user = jwt_partner.create_user()
    consent = {
        "expirationDateTime": in_days(30),
        "transactionFromDateTime": in_days(-40),
        "permissions": ["ReadAccountsBasic", "ReadTransactionsCredits"],
        "permissionsAction": "replace",
    }
    jwt_partner.journey(claims=consent_claims(user["userId"], consent))
    connection = jwt_partner.fake.controls.connections(user["userId"])[0]
    assert connection.permissions == {"ReadAccountsBasic", "ReadTransactionsCredits"}
    assert abs((connection.expires_at - datetime.now(UTC)).days - 30) <= 1
    data = jwt_partner.client_credentials("transactions:read:all", sub=user["userId"])
    transactions = requests.get(
        f"{jwt_partner.fake.data_api_url}/transactions",
        headers={"Authorization": f"Bearer {data}"}, timeout=5,
    ).json()["data"]
    assert transactions and all(t["amount"]["value"] >= 0 for t in transactions)
    cutoff = (datetime.now(UTC) - timedelta(days=41)).isoformat()
    assert all(t["date"] >= cutoff[:10] for t in transactions)


def test_par_refuses_unsigned_and_wrongly_signed_requests(jwt_partner: Partner):
    par = f"{jwt_partner.fake.issuer}/request"
    plain = jwt_partner.post(par, {"scope": "openid id:test", "response_type": "code",
                                   "redirect_uri": DEFAULT_REDIRECT_URI})
    assert plain.status_code == 400
    assert plain.json()["error"] == "invalid_request"

    user = jwt_partner.create_user()
    header, payload, _ = jwt_partner.request_object(claims=connect_claims(user["userId"])).split(".")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    for token in (f"{unsigned}.{payload}.", f"{header}.{payload}.AAAA"):
        response = jwt_partner.post(par, {"request": token})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request_object"


def test_par_requires_client_authentication(moneyhub_fake: MoneyhubFake):
    response = requests.post(f"{moneyhub_fake.issuer}/request", data={"request": "x.y.z"},
                             timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_basic_client_request_objects_are_hs256_with_the_secret(basic_partner: Partner):
    user = basic_partner.create_user()
    token = basic_partner.request_object(claims=connect_claims(user["userId"]))
    assert decode_header(token)["alg"] == "HS256"
    assert basic_partner.journey(claims=connect_claims(user["userId"]))["code"]


# ------------------------------------------------------------------------ data access


def connected_user(partner: Partner, *banks: str) -> str:
    user = partner.create_user()
    for bank in banks:
        partner.journey(scope=f"openid id:{bank}", claims=connect_claims(user["userId"]))
    return user["userId"]


def test_a_data_token_reaches_every_connection_of_the_user(jwt_partner: Partner):
    user_id = connected_user(jwt_partner, MODELO, NATIONWIDE)
    token = jwt_partner.client_credentials("accounts:read transactions:read:all", sub=user_id)
    headers = {"Authorization": f"Bearer {token}"}
    data_api = jwt_partner.fake.data_api_url
    accounts = requests.get(f"{data_api}/accounts", headers=headers, timeout=5).json()["data"]
    assert {a["providerName"] for a in accounts} == {
        "Modelo Open Banking Mock", "Nationwide Open Banking",
    }
    assert all("details" not in a for a in accounts), "account numbers need accounts_details"
    page = requests.get(f"{data_api}/transactions", params={"limit": 5}, headers=headers,
                        timeout=5).json()
    assert len(page["data"]) == 5
    assert page["meta"]["total"] > 5
    assert "next" in page["links"]
    dates = [t["date"] for t in page["data"]]
    assert dates == sorted(dates, reverse=True)
    assert {t["accountId"] for t in page["data"]} <= {a["id"] for a in accounts}


def test_data_is_deterministic_for_the_same_seed():
    def snapshot() -> list[Any]:
        with running_moneyhub_fake() as fake:
            partner = Partner(fake, fake.basic_client)
            user_id = connected_user(partner, NATIONWIDE)
            token = partner.client_credentials("accounts:read", sub=user_id)
            accounts = requests.get(f"{fake.data_api_url}/accounts",
                                    headers={"Authorization": f"Bearer {token}"}, timeout=5)
            return [(a["id"], a["accountName"]) for a in accounts.json()["data"]]

    assert snapshot() == snapshot()


def test_transactions_in_scope_returns_only_credits(jwt_partner: Partner):
    user_id = connected_user(jwt_partner, NATIONWIDE)
    token = jwt_partner.client_credentials("transactions:read:in", sub=user_id)
    data = requests.get(f"{jwt_partner.fake.data_api_url}/transactions",
                        headers={"Authorization": f"Bearer {token}"}, timeout=5).json()["data"]
    assert data and all(t["amount"]["value"] > 0 for t in data)


@pytest.mark.parametrize(
    ("scope", "sub", "error"),
    [
        ("transactions:read:all transactions:read:out", True, "invalid_scope"),
        ("transactions:write", True, "invalid_scope"),
        ("accounts:read", False, "invalid_request"),
        ("user:create", True, "invalid_scope"),
        ("everything", False, "invalid_scope"),
    ],
)
def test_client_credentials_scope_rules(jwt_partner: Partner, scope: str, sub: bool, error: str):
    user_id = jwt_partner.create_user()["userId"]
    form = {"grant_type": "client_credentials", "scope": scope}
    if sub:
        form["sub"] = user_id
    response = jwt_partner.token(**form)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_protected_routes_check_bearer_tokens(jwt_partner: Partner):
    user_id = connected_user(jwt_partner, MODELO)
    fake = jwt_partner.fake
    accounts_url = f"{fake.data_api_url}/accounts"
    assert requests.get(accounts_url, timeout=5).status_code == 401
    user_token = jwt_partner.client_credentials("user:read")
    refused = requests.get(accounts_url, headers={"Authorization": f"Bearer {user_token}"},
                           timeout=5)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    data_token = jwt_partner.client_credentials("transactions:read:all", sub=user_id)
    narrow = requests.get(accounts_url, headers={"Authorization": f"Bearer {data_token}"},
                          timeout=5)
    assert narrow.status_code == 403
    assert narrow.json()["error"] == "insufficient_scope"
    wrong_scope = requests.delete(f"{fake.identity_url}/users/{user_id}",
                                  headers={"Authorization": f"Bearer {user_token}"}, timeout=5)
    assert wrong_scope.status_code == 403


# ------------------------------------------------------------------------ users and connections


def test_connections_report_status_and_can_be_deleted(jwt_partner: Partner):
    fake = jwt_partner.fake
    user_id = connected_user(jwt_partner, MODELO, NATIONWIDE)
    modelo, nationwide = fake.controls.connections(user_id)
    fake.controls.set_connection_status(nationwide.id, "error", "mfa_required")
    token = jwt_partner.client_credentials("user:read user:delete")
    headers = {"Authorization": f"Bearer {token}"}
    listed = requests.get(f"{fake.identity_url}/users/{user_id}/connections", headers=headers,
                          timeout=5).json()
    assert listed["meta"] == {}
    by_id = {c["id"]: c for c in listed["data"]}
    assert by_id[modelo.id]["status"] == "ok" and by_id[modelo.id]["error"] is None
    assert (by_id[nationwide.id]["status"], by_id[nationwide.id]["error"]) == (
        "error", "mfa_required",
    )
    assert {"name", "connectedOn", "lastUpdated", "expiresAt", "accountIds"} <= set(
        by_id[modelo.id]
    )

    deleted = requests.delete(
        f"{fake.identity_url}/users/{user_id}/connection/{modelo.id}", headers=headers, timeout=5
    )
    assert deleted.status_code == 204
    again = requests.delete(
        f"{fake.identity_url}/users/{user_id}/connection/{modelo.id}", headers=headers, timeout=5
    )
    assert again.status_code == 404
    assert [c.id for c in fake.controls.connections(user_id)] == [nationwide.id]

    assert requests.delete(f"{fake.identity_url}/users/{user_id}", headers=headers,
                           timeout=5).status_code == 204
    assert requests.get(f"{fake.identity_url}/users/{user_id}", headers=headers,
                        timeout=5).status_code == 404
    assert fake.controls.connections(user_id) == []


def test_users_of_another_client_are_invisible(moneyhub_fake: MoneyhubFake):
    jwt_user = Partner(moneyhub_fake, moneyhub_fake.jwt_client).create_user()
    basic = Partner(moneyhub_fake, moneyhub_fake.basic_client)
    token = basic.client_credentials("user:read")
    response = requests.get(f"{moneyhub_fake.identity_url}/users/{jwt_user['userId']}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 404
    assert basic.token(grant_type="client_credentials", scope="accounts:read",
                       sub=jwt_user["userId"]).status_code == 400


@pytest.mark.parametrize("journey", ["reauth", "refresh"])
def test_reauth_and_refresh_journeys_heal_the_connection(jwt_partner: Partner, journey: str):
    fake = jwt_partner.fake
    user_id = connected_user(jwt_partner, NATIONWIDE)
    connection = fake.controls.connections(user_id)[0]
    fake.controls.set_connection_status(connection.id, "error", "credentials_error")
    fake.controls.expire_connection(connection.id)
    claims = {"id_token": {"sub": {"essential": True, "value": user_id},
                           "mh:con_id": {"essential": True, "value": connection.id}}}
    params = jwt_partner.journey(scope=f"openid {journey}", response_type="id_token",
                                 nonce="n-r", state="s-r", claims=claims)
    assert set(params) == {"id_token", "state"}
    id_claims = verify_id_token(fake, params["id_token"])
    assert id_claims["mh:con_id"] == connection.id
    assert id_claims["sub"] == user_id
    assert id_claims["s_hash"] == half_hash("s-r")
    healed = fake.controls.connection(connection.id)
    assert (healed.status, healed.error) == ("ok", None)
    if journey == "reauth":
        assert healed.expires_at > datetime.now(UTC) + timedelta(days=80)


def test_reauth_allows_only_openid_alongside(jwt_partner: Partner):
    user_id = connected_user(jwt_partner, NATIONWIDE)
    connection = jwt_partner.fake.controls.connections(user_id)[0]
    claims = {"id_token": {"sub": {"value": user_id}, "mh:con_id": {"value": connection.id}}}
    response = jwt_partner.push(scope="openid reauth offline_access", response_type="id_token",
                                claims=claims)
    assert response.json()["error"] == "invalid_scope"
    other = jwt_partner.push(scope="openid reauth", response_type="id_token",
                             claims={"id_token": {"sub": {"value": user_id},
                                                  "mh:con_id": {"value": "nope:123"}}})
    assert other.json()["error"] == "invalid_request"


# ------------------------------------------------------------------------ controls


def test_denied_authorization_returns_access_denied_with_state(jwt_partner: Partner):
    user = jwt_partner.create_user()
    jwt_partner.fake.controls.deny_authorization()
    params = jwt_partner.journey(state="keep-me", claims=connect_claims(user["userId"]))
    assert params == {
        "error": "access_denied",
        "error_description": "The user refused access at the bank",
        "state": "keep-me",
    }
    assert jwt_partner.fake.controls.connections(user["userId"]) == []
    assert "code" in jwt_partner.journey(claims=connect_claims(user["userId"]))


def test_injected_failures_answer_once_then_recover(jwt_partner: Partner):
    controls = jwt_partner.fake.controls
    controls.fail("oidc.token", 503)
    failed = jwt_partner.token(grant_type="client_credentials", scope="user:create")
    assert failed.status_code == 503
    assert failed.json()["error"] == "server_error"
    assert jwt_partner.token(grant_type="client_credentials", scope="user:create").ok
    assert len(controls.token_requests("client_credentials")) == 2
    with pytest.raises(ValueError, match="unknown endpoint"):
        controls.fail("oidc.tokens")


def test_requests_are_recorded_for_assertions(jwt_partner: Partner):
    user = jwt_partner.create_user("who")
    recorded = jwt_partner.fake.controls.requests("users.create_user")
    assert recorded[0].json == {"clientUserId": "who"}
    assert recorded[0].headers["Authorization"].startswith("Bearer ")
    jwt_partner.journey(claims=connect_claims(user["userId"]), state="abc")
    pushed = jwt_partner.fake.controls.pushed_requests()[0]
    assert pushed.state == "abc"
    assert pushed.request_object["iss"] == jwt_partner.credentials.client_id


@pytest.mark.parametrize("fault", ["signature", "nonce", "c_hash", "s_hash", "aud", "expired"])
def test_corrupted_id_tokens_fail_the_checks_a_partner_makes(jwt_partner: Partner, fault: str):
    user = jwt_partner.create_user()
    jwt_partner.fake.controls.corrupt_id_tokens(fault, channel="authorization")
    params = jwt_partner.journey(response_type="code id_token", state="s", nonce="n",
                                 claims=connect_claims(user["userId"]))
    if fault == "signature":
        with pytest.raises(BadSignatureError):
            verify_id_token(jwt_partner.fake, params["id_token"])
        return
    claims = verify_id_token(jwt_partner.fake, params["id_token"])
    expected = {
        "nonce": ("nonce", "n"),
        "c_hash": ("c_hash", half_hash(params["code"])),
        "s_hash": ("s_hash", half_hash("s")),
        "aud": ("aud", jwt_partner.credentials.client_id),
    }
    if fault == "expired":
        assert claims["exp"] < time.time()
    else:
        name, good = expected[fault]
        assert claims[name] != good
    # the token endpoint channel is untouched
    tokens = jwt_partner.token(grant_type="authorization_code", code=params["code"],
                               redirect_uri=DEFAULT_REDIRECT_URI).json()
    assert verify_id_token(jwt_partner.fake, tokens["id_token"])["nonce"] == "n"


def test_concurrent_requests_are_safe(basic_partner: Partner):
    with ThreadPoolExecutor(max_workers=8) as pool:
        users = list(pool.map(lambda i: basic_partner.create_user(f"p{i}"), range(24)))
    assert len({u["userId"] for u in users}) == 24
    assert len(basic_partner.fake.controls.users(basic_partner.credentials.client_id)) == 24


def test_es256_clients_and_id_tokens_are_supported():
    clients = {"jwt": make_client("es-client", "private_key_jwt", alg="ES256"),
               "basic": make_client("b", "client_secret_basic")}
    with running_moneyhub_fake(clients) as fake:
        partner = Partner(fake, fake.jwt_client)
        user = partner.create_user()
        params = partner.journey(response_type="code id_token", claims=connect_claims(
            user["userId"]))
        assert decode_header(params["id_token"])["alg"] == "ES256"
        assert verify_id_token(fake, params["id_token"])["c_hash"]
