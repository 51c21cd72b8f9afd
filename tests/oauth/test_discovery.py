"""A client discovers everything it needs from the two metadata documents and /jwks."""

from __future__ import annotations

import requests

ENDPOINTS = ("authorization_endpoint", "token_endpoint", "pushed_authorization_request_endpoint",
             "introspection_endpoint", "revocation_endpoint", "registration_endpoint",
             "userinfo_endpoint", "jwks_uri")


def test_both_documents_list_every_endpoint_and_supported_value(server):
    oidc = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10)
    oauth = requests.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10)
    assert oidc.status_code == oauth.status_code == 200
    assert oidc.json() == oauth.json()
    doc = oidc.json()
    assert doc["issuer"] == server.url
    for name in ENDPOINTS:
        assert doc[name].startswith(server.url), name
    assert doc["introspection_endpoint"] == f"{server.url}/introspect"
    assert doc["jwks_uri"] == f"{server.url}/jwks"
    assert doc["scopes_supported"] == ["openid", "offline_access", "accounts:read", "balances:read",
                                       "transactions:read", "payments", "events"]
    assert doc["response_types_supported"] == ["code", "code id_token"]
    assert set(doc["response_modes_supported"]) == {"query", "fragment", "form_post"}
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token",
                                                 "client_credentials"}
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["claims_parameter_supported"] is True
    assert doc["require_pushed_authorization_requests"] is False
    assert set(doc["id_token_signing_alg_values_supported"]) == {"RS256", "ES256", "PS256"}
    assert "none" not in doc["request_object_signing_alg_values_supported"]
    for endpoint in ("token", "revocation", "introspection"):
        assert set(doc[f"{endpoint}_endpoint_auth_methods_supported"]) == {
            "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
        assert "none" not in doc[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]


def test_every_listed_endpoint_answers(server):
    doc = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    for name in ENDPOINTS:
        response = requests.request("GET" if name in ("jwks_uri", "authorization_endpoint",
                                                      "userinfo_endpoint") else "POST",
                                    doc[name], timeout=10)
        assert response.status_code != 404, name
        assert response.status_code < 500, name


def test_require_par_setting_is_published(make_as):
    server = make_as(AGGREGATOR_REQUIRE_PAR="true")
    doc = requests.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert doc["require_pushed_authorization_requests"] is True


def test_jwks_publishes_public_signing_keys_only(server):
    response = requests.get(f"{server.url}/jwks", timeout=10)
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {key["alg"] for key in keys} == {"RS256", "PS256", "ES256"}
    for key in keys:
        assert key["kid"] and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "no private key material"
