"""``AGGREGATOR_PROFILE=fapi2``: the FAPI 2.0 Security Profile's rules at a running AS.

The app is written as a FAPI 2.0 developer writes one (Authlib's ``OAuth2Session`` with
``private_key_jwt``, DPoP proofs made with joserfc); every rule of the profile has its refusal.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from aggregator.oauth.client_auth import JWT_BEARER
from config import ConfigError, load_settings
from tests.fixtures.aggregator import LiveAS
from tests.oauth.apps import (
    DATA,
    INITIAL_ACCESS_TOKEN,
    REDIRECT,
    App,
    authorization_url,
    make_app,
    new_key,
    pkce,
    register,
    walk,
)
from tests.oauth.fapi_client import DPoPKey, FapiApp


def discovery(server: LiveAS) -> dict:
    return requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()


def error_of(response: requests.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    return response.json().get("error_description", "")


# ------------------------------------------------------------------ the story


def test_a_fapi_app_runs_par_private_key_jwt_dpop_code_refresh_userinfo_and_introspection(fapi, ana, grapher):
    location, verifier = grapher.sign_in(ana)
    response = parse_qs(urlsplit(location).query)
    assert response["iss"] == [fapi.url]  # RFC 9207 §2

    token = grapher.fetch_token(location, verifier)
    assert token["token_type"] == "DPoP"
    assert set(token["scope"].split()) == {"openid", "offline_access", *DATA.split()}
    keys = KeySet.import_key_set(requests.get(grapher.metadata["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["PS256", "ES256"])
    assert id_token.header["alg"] == "PS256"  # the profile's default for a new registration
    assert id_token.claims["aud"] == grapher.app.client_id and id_token.claims["nonce"] == "n-0S6"

    found = grapher.userinfo(token["access_token"])
    assert found.status_code == 200, found.text
    assert found.json()["sub"] == id_token.claims["sub"]
    stolen = requests.get(grapher.metadata["userinfo_endpoint"], timeout=10,
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert stolen.status_code == 401 and stolen.headers["WWW-Authenticate"].startswith("DPoP")

    # FAPI 2.0 §5.3.2.1: no rotation, so a refresh whose answer was lost can be sent again
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    refreshed = grapher.token_request(refresh)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP" and "refresh_token" not in refreshed.json()
    again = grapher.token_request(refresh)
    assert again.status_code == 200, again.text

    described = grapher.app.post("/introspect", {"token": again.json()["access_token"]}).json()
    assert described["active"] is True and described["token_type"] == "DPoP"
    assert described["cnf"] == {"jkt": grapher.dpop.jkt}  # RFC 9449 §6.2
    signed = grapher.app.post("/introspect", {"token": again.json()["access_token"]},
                              headers={"Accept": "application/token-introspection+jwt"})
    introspection = jwt.decode(signed.text, keys, algorithms=["PS256", "ES256"])  # RFC 9701
    assert introspection.header["alg"] == "PS256"
    assert introspection.claims["token_introspection"]["cnf"] == {"jkt": grapher.dpop.jkt}


def test_discovery_reflects_the_profile(fapi):
    metadata = discovery(fapi)
    assert metadata["require_pushed_authorization_requests"] is True
    assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert metadata["revocation_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert metadata["introspection_signing_alg_values_supported"] == ["PS256"]
    for name in ("token_endpoint_auth_signing_alg_values_supported",
                 "request_object_signing_alg_values_supported", "id_token_signing_alg_values_supported",
                 "dpop_signing_alg_values_supported"):
        assert sorted(metadata[name]) == ["ES256", "PS256"], name
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["response_modes_supported"] == ["query", "form_post"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True


def test_the_default_profile_keeps_its_lists(server):
    metadata = discovery(server)
    assert metadata["require_pushed_authorization_requests"] is False
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert "code id_token" in metadata["response_types_supported"]
    assert metadata["introspection_signing_alg_values_supported"] == ["RS256"]


def test_an_unknown_profile_stops_start_up():
    with pytest.raises(ConfigError, match="AGGREGATOR_PROFILE"):
        load_settings({"AGGREGATOR_PROFILE": "fapi1"})
    assert load_settings({}).profile == "default"


# ------------------------------------------------------------------ PAR (FAPI 2.0 §5.3.2.2, RFC 9126 §5)


def test_an_authorization_request_not_pushed_is_refused(fapi, ana, grapher):
    _, challenge = pkce()
    page = walk(ana, authorization_url(fapi, client_id=grapher.app.client_id, response_type="code",
                                       redirect_uri=REDIRECT, scope="openid", state="st-1",
                                       code_challenge=challenge, code_challenge_method="S256"))
    assert page.status_code in (302, 303)
    params = {key: values[0] for key, values in parse_qs(urlsplit(page.headers["Location"]).query).items()}
    assert params["error"] == "invalid_request" and "PAR" in params["error_description"]
    assert params["iss"] == fapi.url and params["state"] == "st-1"


# ------------------------------------------------------------------ client authentication (§5.3.2.1)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_registering_another_authentication_method_is_refused(fapi, method):
    response = register(fapi, redirect_uris=[REDIRECT], token_endpoint_auth_method=method)
    assert "private_key_jwt" in error_of(response, 400, "invalid_client_metadata")


@pytest.mark.parametrize("member", ["token_endpoint_auth_signing_alg", "id_token_signed_response_alg",
                                    "request_object_signing_alg"])
def test_registering_rs256_is_refused(fapi, member):
    key = new_key("RSA")
    response = register(fapi, redirect_uris=[REDIRECT], token_endpoint_auth_method="private_key_jwt",
                        jwks={"keys": [key.as_dict(private=False)]}, **{member: "RS256"})
    assert member in error_of(response, 400, "invalid_client_metadata")


def test_registering_code_id_token_is_refused(fapi):
    key = new_key("RSA")
    response = register(fapi, redirect_uris=[REDIRECT], token_endpoint_auth_method="private_key_jwt",
                        jwks={"keys": [key.as_dict(private=False)]}, response_types=["code id_token"])
    error_of(response, 400, "invalid_client_metadata")


def test_a_client_registered_with_a_secret_before_the_switch_is_refused(make_as, tmp_path):
    """The operator turns fapi2 on over the same data: an app using a secret must re-register."""
    shared = {"AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
              "AGGREGATOR_DATA_DIR": str(tmp_path / "shared")}
    before = make_as(**shared)
    old = make_app(before, grant_types=["client_credentials"], redirect_uris=[])
    assert old.post("/token", {"grant_type": "client_credentials"}).status_code == 200
    after = make_as(AGGREGATOR_PROFILE="fapi2", **shared)
    moved = App(after, old.info)
    description = error_of(moved.post("/token", {"grant_type": "client_credentials"},
                                      headers={"DPoP": DPoPKey().proof("POST", f"{after.url}/token")}),
                           401, "invalid_client")
    assert "FAPI 2.0" in description and "client_secret_basic" in description
    error_of(moved.post("/introspect", {"token": "anything"}), 401, "invalid_client")


def test_a_client_registered_for_rs256_before_the_switch_moves_to_ps256(make_as, tmp_path):
    shared = {"AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
              "AGGREGATOR_DATA_DIR": str(tmp_path / "shared")}
    before = make_as(**shared)
    old = make_app(before, key=new_key("RSA"), grant_types=["client_credentials"], redirect_uris=[],
                   token_endpoint_auth_signing_alg="RS256")
    after = make_as(AGGREGATOR_PROFILE="fapi2", **shared)
    moved = FapiApp(after, App(after, old.info, old.key))
    assert moved.app.key is not None
    now = int(time.time())
    rs256 = jwt.encode({"alg": "RS256", "kid": moved.app.key.kid},
                       {"iss": moved.app.client_id, "sub": moved.app.client_id, "aud": after.url,
                        "jti": "j-rs", "exp": now + 60}, moved.app.key, algorithms=["RS256"])
    response = requests.post(f"{after.url}/token", timeout=10,
                             headers={"DPoP": moved.dpop.proof("POST", f"{after.url}/token")},
                             data={"grant_type": "client_credentials", "client_assertion": rs256,
                                   "client_assertion_type": JWT_BEARER})
    assert "PS256, ES256" in error_of(response, 401, "invalid_client")
    assert moved.token_request({"grant_type": "client_credentials"}).status_code == 200  # PS256


def test_a_client_assertion_must_name_the_issuer_as_a_string(fapi, grapher):
    machine = make_app(fapi, key=new_key("EC"), grant_types=["client_credentials"], redirect_uris=[])
    proof = DPoPKey()
    for audience in (f"{fapi.url}/token", [fapi.url]):
        assertion = machine.assertion(aud=audience)
        response = requests.post(f"{fapi.url}/token", timeout=10, headers={
            "DPoP": proof.proof("POST", f"{fapi.url}/token")}, data={
            "grant_type": "client_credentials", "client_assertion": assertion,
            "client_assertion_type": JWT_BEARER})
        assert "issuer identifier" in error_of(response, 401, "invalid_client"), audience
    response = machine.post("/token", {"grant_type": "client_credentials"},
                            headers={"DPoP": proof.proof("POST", f"{fapi.url}/token")})
    assert response.status_code == 200, response.text


def test_rs256_is_refused_for_assertions_proofs_and_request_objects(fapi, grapher):
    app = grapher.app
    assert app.key is not None
    rs256 = jwt.encode({"alg": "RS256", "kid": app.key.kid},
                       {"iss": app.client_id, "sub": app.client_id, "aud": fapi.url, "jti": "j-1",
                        "exp": int(time.time()) + 60}, app.key, algorithms=["RS256"])
    response = requests.post(f"{fapi.url}/par", timeout=10, data={
        "client_assertion": rs256, "client_assertion_type": JWT_BEARER, "response_type": "code",
        "scope": "openid"})
    assert "PS256" in error_of(response, 401, "invalid_client")

    dpop = DPoPKey("RSA")
    refused = app.post("/token", {"grant_type": "authorization_code", "code": "x"},
                       headers={"DPoP": dpop.proof("POST", f"{fapi.url}/token", alg="RS256")})
    error_of(refused, 400, "invalid_dpop_proof")

    _, challenge = pkce()
    request_object = jwt.encode({"alg": "RS256", "kid": app.key.kid}, {
        "iss": app.client_id, "aud": fapi.url, "client_id": app.client_id, "exp": int(time.time()) + 60,
        "nbf": int(time.time()), "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
        "code_challenge": challenge, "code_challenge_method": "S256"}, app.key, algorithms=["RS256"])
    error_of(app.post("/par", {"request": request_object}), 400, "invalid_request_object")


# ------------------------------------------------------------------ sender-constrained tokens (§5.3.2.1)


def test_every_token_request_needs_a_dpop_proof(fapi, ana, grapher):
    location, verifier = grapher.sign_in(ana)
    with pytest.raises(OAuthError) as refused:
        grapher.fetch_token(location, verifier, proof=False)
    assert refused.value.error == "invalid_dpop_proof"

    machine = FapiApp(fapi, make_app(fapi, key=new_key("EC"), grant_types=["client_credentials"],
                                     redirect_uris=[]))
    error_of(machine.token_request({"grant_type": "client_credentials"}, proof=False), 400,
             "invalid_dpop_proof")
    issued = machine.token_request({"grant_type": "client_credentials"})
    assert issued.status_code == 200 and issued.json()["token_type"] == "DPoP"


def test_a_refresh_needs_a_proof_too(fapi, ana, grapher):
    location, verifier = grapher.sign_in(ana)
    token = grapher.fetch_token(location, verifier)
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    error_of(grapher.token_request(refresh, proof=False), 400, "invalid_dpop_proof")
    # a confidential client's refresh token is bound by its authentication (RFC 9449 §5): the
    # same app may refresh with a new DPoP key
    grapher.dpop = DPoPKey()
    assert grapher.token_request(refresh).status_code == 200


# ------------------------------------------------------------------ response types (§5.3.2.2)


def test_only_response_type_code_is_accepted(fapi, grapher):
    verifier = "v" * 43
    refused = grapher.push(verifier, response_type="code id_token")
    error_of(refused, 400, "unsupported_response_type")
    error_of(grapher.push(verifier, response_mode="fragment"), 400, "invalid_request")
    assert grapher.push(verifier, response_mode="form_post").status_code == 201


def test_a_code_lives_at_most_sixty_seconds(fapi, ana, grapher):
    location, _ = grapher.sign_in(ana)
    code = parse_qs(urlsplit(location).query)["code"][0]
    redemption = fapi.services.store.codes.redeem(code)
    assert redemption is not None
    assert redemption.code.expires_at - redemption.code.issued_at <= 60  # FAPI 2.0 §5.3.2.1
