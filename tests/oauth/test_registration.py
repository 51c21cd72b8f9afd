"""Apps register themselves (RFC 7591) and manage their registration (RFC 7592)."""

from __future__ import annotations

import requests

from aggregator.crypto import token_hash
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, REDIRECT, make_app, new_key, register


def test_registration_is_closed_without_an_initial_access_token(make_as):
    server = make_as()
    response = register(server, client_name="Grapher", redirect_uris=[REDIRECT])
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"


def test_registration_needs_the_initial_access_token(server):
    missing = requests.post(f"{server.url}/register", json={"redirect_uris": [REDIRECT]}, timeout=10)
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_token"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.post(f"{server.url}/register", json={"redirect_uris": [REDIRECT]}, timeout=10,
                          headers={"Authorization": "Bearer " + INITIAL_ACCESS_TOKEN + "x"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"


def test_a_confidential_app_gets_a_secret_stored_only_as_a_hash(server):
    response = register(server, client_name="Grapher", redirect_uris=[REDIRECT],
                         grant_types=["authorization_code", "refresh_token"])
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    info = response.json()
    assert info["client_secret"] and info["registration_access_token"]
    assert info["registration_client_uri"] == f"{server.url}/register/{info['client_id']}"
    assert info["token_endpoint_auth_method"] == "client_secret_basic"
    assert info["response_types"] == ["code"] and info["client_secret_expires_at"] == 0
    stored = server.services.store.clients.get(info["client_id"])
    assert stored.client_secret_hash == token_hash(info["client_secret"])
    assert stored.registration_token_hash == token_hash(info["registration_access_token"])
    redis = server.services.store.redis
    for key in redis.scan_iter("*"):
        raw = str(redis.dump(key))
        assert info["client_secret"] not in raw and info["registration_access_token"] not in raw


def test_a_public_app_gets_no_secret(server):
    info = register(server, client_name="Phone app", redirect_uris=["http://127.0.0.1:8765/cb"],
                    token_endpoint_auth_method="none").json()
    assert "client_secret" not in info
    assert info["token_endpoint_auth_method"] == "none"


def test_a_client_credentials_only_app_has_no_redirect_uris(server):
    response = register(server, client_name="Batch job", grant_types=["client_credentials"],
                        response_types=[])
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["response_types"] == [] and info["redirect_uris"] == []
    assert info["client_secret"]


def test_metadata_is_validated_with_the_rfc_errors(server):
    cases = [
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": [REDIRECT], "response_types": []}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"], "response_types": ["code"]},
         "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
         "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"},
         "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "jwks": {"keys": [new_key().as_dict(private=False)]},
          "jwks_uri": "https://app.example/jwks"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "jwks": {"keys": [new_key().as_dict(private=True)]}},
         "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_jwt"},
         "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "scope": "openid admin"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "logo_uri": "javascript:alert(1)"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "client_name": "\x00"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "resource_server_for": ["nobody"]}, "invalid_client_metadata"),
        ({"redirect_uris": "https://app.example/cb"}, "invalid_redirect_uri"),
    ]
    for document, error in cases:
        response = register(server, **document)
        assert response.status_code == 400, (document, response.text)
        assert response.json()["error"] == error, (document, response.json())


def test_unknown_metadata_is_ignored(server):
    response = register(server, redirect_uris=[REDIRECT], software_id="grapher", something="else")
    assert response.status_code == 201
    assert "something" not in response.json()


def test_an_app_reads_updates_and_deletes_its_registration(server):
    info = register(server, client_name="Grapher", redirect_uris=[REDIRECT]).json()
    uri = info["registration_client_uri"]

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    read = requests.get(uri, headers=bearer(info["registration_access_token"]), timeout=10)
    assert read.status_code == 200
    assert read.json()["client_name"] == "Grapher" and "client_secret" not in read.json()
    token = read.json()["registration_access_token"]  # rotated: we only keep its hash
    stale = requests.get(uri, headers=bearer(info["registration_access_token"]), timeout=10)
    assert stale.status_code == 401

    update = {"client_id": info["client_id"], "client_name": "Grapher 2",
              "redirect_uris": [REDIRECT, "https://app.example/other"]}
    updated = requests.put(uri, json=update, headers=bearer(token), timeout=10)
    assert updated.status_code == 200, updated.text
    assert updated.json()["client_name"] == "Grapher 2"
    assert len(updated.json()["redirect_uris"]) == 2
    token = updated.json()["registration_access_token"]
    stored = server.services.store.clients.get(info["client_id"])
    assert stored.client_secret_hash == token_hash(info["client_secret"]), "the secret stays"

    wrong_id = requests.put(uri, json={**update, "client_id": "other"}, headers=bearer(token), timeout=10)
    assert wrong_id.status_code == 400 and wrong_id.json()["error"] == "invalid_request"
    bad = requests.put(uri, json={**update, "redirect_uris": ["http://evil.example/"]},
                       headers=bearer(token), timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_redirect_uri"

    deleted = requests.delete(uri, headers=bearer(token), timeout=10)
    assert deleted.status_code == 204
    assert server.services.store.clients.get(info["client_id"]) is None
    gone = requests.get(uri, headers=bearer(token), timeout=10)
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_token"


def test_registration_management_never_reveals_whether_a_client_exists(server):
    app = make_app(server)
    for client_id in (app.client_id, "does-not-exist"):
        response = requests.get(f"{server.url}/register/{client_id}", timeout=10,
                                headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"


def test_only_an_operator_makes_a_client_a_resource_server(server):
    """Introspecting another app's tokens reveals its upstream bank tokens: never self-service."""
    victim = register(server, redirect_uris=[REDIRECT]).json()["client_id"]
    response = register(server, redirect_uris=[REDIRECT], resource_server_for=[victim])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert "operator" in response.json()["error_description"]
