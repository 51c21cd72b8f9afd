"""The token endpoint: codes, refresh rotation, client credentials, and every refusal's RFC error."""

from __future__ import annotations

import time

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from aggregator.crypto import token_hash
from aggregator.store import key_names
from tests.oauth.apps import (
    DATA,
    REDIRECT,
    code_flow,
    exchange,
    id_token_claims,
    make_app,
    new_key,
    seed_registration,
)


def assert_error(response: requests.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.json()
    assert response.headers["Cache-Control"] == "no-store"


def test_a_code_becomes_tokens_once(server, nat):
    seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server)
    params, verifier = code_flow(server, app, nat, scope=f"openid offline_access {DATA}")
    response = exchange(app, params["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert len(body["access_token"]) >= 43 and body["refresh_token"] and body["id_token"]
    assert body["grant_id"] and body["introspection_endpoint"] == f"{server.url}/introspect"
    record = server.services.store.tokens.find_access_token(body["access_token"])
    assert record.token_hash == token_hash(body["access_token"]) and record.grant_id == body["grant_id"]


def test_a_replayed_code_is_refused_and_revokes_what_it_issued(server, nat):
    app = make_app(server)
    params, verifier = code_flow(server, app, nat, scope="openid offline_access accounts:read")
    first = exchange(app, params["code"], verifier).json()
    replay = exchange(app, params["code"], verifier)
    assert_error(replay, "invalid_grant")
    tokens = server.services.store.tokens
    assert tokens.find_access_token(first["access_token"]) is None
    assert tokens.find_refresh_token(first["refresh_token"]) is None
    refresh = app.post("/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert_error(refresh, "invalid_grant")


def test_an_expired_code_is_refused(server, nat):
    app = make_app(server)
    params, verifier = code_flow(server, app, nat, scope="openid")
    key = key_names.authorization_code(token_hash(params["code"]))
    server.services.store.redis.hset(key, "expires_at", int(time.time()) - 1)  # 60 s later
    assert_error(exchange(app, params["code"], verifier), "invalid_grant")


def test_a_code_is_bound_to_its_client_redirect_uri_and_pkce_verifier(server, nat):
    app = make_app(server, redirect_uris=[REDIRECT, "https://app.example/other"])
    other = make_app(server)
    cases = [
        (other, {}, "the code was issued to another client"),
        (app, {"redirect_uri": "https://app.example/other"}, "another redirect_uri"),
        (app, {"code_verifier": "w" * 43}, "a wrong verifier"),
        (app, {"code_verifier": None}, "no verifier"),
        (app, {"code_verifier": "short"}, "a malformed verifier"),
    ]
    for client, overrides, why in cases:
        params, verifier = code_flow(server, app, nat, scope="openid")
        data = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
                "code_verifier": verifier, **overrides}
        response = client.post("/token", {k: v for k, v in data.items() if v is not None})
        assert_error(response, "invalid_grant"), why


def test_a_confidential_client_must_use_pkce_too(server, nat):
    """RFC 9700 §2.1.1, FAPI 2.0 §5.3.2.2: PKCE S256 for every client, not only public ones."""
    app = make_app(server)
    params, _ = code_flow(server, app, nat, scope="openid", use_pkce=False)
    assert params["error"] == "invalid_request" and "PKCE" in params["error_description"]


def test_a_code_without_challenge_is_refused_with_or_without_a_verifier(server, nat):
    """A code from before PKCE was required of everyone (issued here straight through the
    repository, as an older version stored it) is never exchanged: with a verifier that
    would be an unnoticed PKCE downgrade (RFC 9700 §2.1.1)."""
    app = make_app(server)
    person = server.services.store.people.find_by_username("nat")
    for verifier in ("v" * 43, None):
        grant = server.services.store.grants.create(app.client_id, person.id, ["openid"], {})
        code, _ = server.services.store.codes.issue(
            client_id=app.client_id, person_id=person.id, grant_id=grant.id, redirect_uri=REDIRECT,
            scope="openid", code_challenge=None, nonce=None, auth_time=None, claims={},
            max_age_requested=False)
        assert_error(exchange(app, code, verifier), "invalid_grant")


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(server, nat):
    app = make_app(server)
    params, verifier = code_flow(server, app, nat, scope="openid offline_access accounts:read")
    first = exchange(app, params["code"], verifier).json()
    second = app.post("/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"] and second["grant_id"] == first["grant_id"]
    id_token = id_token_claims(server, second["id_token"])
    assert "nonce" not in id_token and id_token["aud"] == app.client_id

    reuse = app.post("/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert_error(reuse, "invalid_grant")
    store = server.services.store
    assert store.grants.get(first["grant_id"]) is None, "the whole grant is revoked"
    assert store.tokens.find_access_token(second["access_token"]) is None
    assert store.tokens.find_refresh_token(second["refresh_token"]) is None
    later = app.post("/token", {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert_error(later, "invalid_grant")


def test_refresh_tokens_only_with_offline_access_and_never_wider(server, nat):
    app = make_app(server)
    params, verifier = code_flow(server, app, nat, scope="openid accounts:read")
    assert "refresh_token" not in exchange(app, params["code"], verifier).json()

    params, verifier = code_flow(server, app, nat, scope="openid offline_access accounts:read")
    refresh = exchange(app, params["code"], verifier).json()["refresh_token"]
    wider = app.post("/token", {"grant_type": "refresh_token", "refresh_token": refresh,
                                "scope": "openid accounts:read balances:read"})
    assert_error(wider, "invalid_scope")
    narrower = app.post("/token", {"grant_type": "refresh_token", "refresh_token": refresh,
                                   "scope": "accounts:read"})
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "accounts:read" and narrower.json()["refresh_token"]

    other = make_app(server)
    stolen = other.post("/token", {"grant_type": "refresh_token",
                                   "refresh_token": narrower.json()["refresh_token"]})
    assert_error(stolen, "invalid_grant")
    assert server.services.store.tokens.find_refresh_token(narrower.json()["refresh_token"]), \
        "another client's attempt does not burn the token"


def test_client_credentials_without_a_person(server):
    app = make_app(server, grant_types=["client_credentials"], response_types=[], redirect_uris=[])
    response = app.post("/token", {"grant_type": "client_credentials", "scope": "accounts:read"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "accounts:read" and "refresh_token" not in body
    assert "grant_id" not in body and "id_token" not in body
    record = server.services.store.tokens.find_access_token(body["access_token"])
    assert record.person_id is None and record.grant_id is None
    assert_error(app.post("/token", {"grant_type": "client_credentials", "scope": "openid"}),
                 "invalid_scope")
    assert_error(app.post("/token", {"grant_type": "authorization_code", "code": "x"}),
                 "unauthorized_client")
    assert_error(app.post("/token", {"grant_type": "password", "username": "a", "password": "b"}),
                 "unsupported_grant_type")
    assert_error(app.post("/token", {}), "invalid_request")
    code_app = make_app(server)
    assert_error(code_app.post("/token", {"grant_type": "client_credentials"}), "unauthorized_client")


def test_id_tokens_are_signed_as_the_client_registered_with_a_pairwise_sub(server, nat):
    rs = make_app(server)
    ps = make_app(server, id_token_signed_response_alg="PS256", key=new_key("EC"))
    subjects = set()
    for app, alg in ((rs, "RS256"), (ps, "PS256")):
        params, verifier = code_flow(server, app, nat, scope="openid", nonce="n-42")
        tokens = exchange(app, params["code"], verifier).json()
        keyset = KeySet.import_key_set(requests.get(f"{server.url}/jwks", timeout=10).json())
        token = jwt.decode(tokens["id_token"], keyset, algorithms=[alg])
        assert token.header["alg"] == alg
        assert token.claims["nonce"] == "n-42" and token.claims["at_hash"]
        subjects.add(token.claims["sub"])
    assert len(subjects) == 2, "each app sees a different identifier for the same person"
    person_id = server.services.store.people.find_by_username("nat").id
    assert person_id not in subjects


def test_a_grant_revoked_before_the_exchange_gives_nothing(server, nat):
    app = make_app(server)
    params, verifier = code_flow(server, app, nat, scope="openid")
    store = server.services.store
    [grant] = store.grants.for_person(store.people.find_by_username("nat").id)
    store.grants.delete(grant.person_id, grant.id)
    assert_error(exchange(app, params["code"], verifier), "invalid_grant")
