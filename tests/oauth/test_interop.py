"""Authlib's own OAuth client against a running AS: the Grapher's whole life with one person."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oauth.apps import (
    DATA,
    REDIRECT,
    decide,
    make_app,
    new_key,
    seed_registration,
    walk,
)


def test_authlib_client_runs_discovery_par_code_pkce_refresh_and_revocation(server, nat):
    astoria = seed_registration(server, nat, "Bank of Astoria")
    seed_registration(server, nat, "Credit Union of Brill")
    key = new_key("RSA")
    app = make_app(server, key=key, client_name="Grapher", token_endpoint_auth_signing_alg="RS256")

    # discovery, as any client starts
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == server.url
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]

    client = OAuth2Session(
        app.client_id, key, token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt", scope=f"openid offline_access {DATA}",
        redirect_uri=REDIRECT, code_challenge_method="S256",
    )
    # no fixed audience: each assertion names the endpoint it is sent to (PAR, token, revocation)
    client.register_client_auth_method(PrivateKeyJWT(alg="RS256"))

    # PAR: the client pushes its authorization request, authenticated with private_key_jwt
    verifier = generate_token(64)
    url, state = client.create_authorization_url(metadata["authorization_endpoint"],
                                                 code_verifier=verifier, nonce="n-0S6")
    pushed = client.post(metadata["pushed_authorization_request_endpoint"],
                         data=dict(parse_qsl(urlsplit(url).query)),
                         auth=client.client_auth("private_key_jwt"), withhold_token=True)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Cache-Control"] == "no-store"
    assert pushed.json()["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.json()["expires_in"] == 60

    # the person: authorization URL with only client_id and request_uri, then consent
    page = walk(nat, f"{metadata['authorization_endpoint']}?client_id={app.client_id}"
                     f"&request_uri={pushed.json()['request_uri']}")
    assert page.status_code == 200
    assert "Grapher" in page.text and "app.example" in page.text
    assert "Bank of Astoria" in page.text and "Credit Union of Brill" in page.text
    redirect = decide(nat, page, registrations=[astoria.id])
    location = redirect.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    assert f"iss={quote(server.url, safe='')}" in location

    # code + PKCE at the token endpoint
    token = client.fetch_token(metadata["token_endpoint"], authorization_response=location,
                               code_verifier=verifier, state=state)
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == {"openid", "offline_access", *DATA.split()}
    assert token["introspection_endpoint"] == f"{server.url}/introspect"
    assert token["grant_id"]
    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(
        requests.get(metadata["jwks_uri"], timeout=10).json()))
    assert id_token.claims["aud"] == app.client_id and id_token.claims["nonce"] == "n-0S6"
    assert id_token.claims["iss"] == server.url and "at_hash" in id_token.claims

    grant = server.services.store.grants.get(token["grant_id"])
    assert grant is not None and grant.registration_ids == {astoria.id}

    userinfo = client.get(metadata["userinfo_endpoint"])
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == id_token.claims["sub"]

    # refresh (rotation: a new refresh token each time)
    first_refresh = token["refresh_token"]
    refreshed = client.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != first_refresh
    assert server.services.store.tokens.find_access_token(refreshed["access_token"]) is not None

    # revocation of the refresh token takes its access tokens along (RFC 7009 §2.1)
    revoked = client.revoke_token(metadata["revocation_endpoint"], refreshed["refresh_token"],
                                  token_type_hint="refresh_token")
    assert revoked.status_code == 200
    assert server.services.store.tokens.find_refresh_token(refreshed["refresh_token"]) is None
    assert server.services.store.tokens.find_access_token(refreshed["access_token"]) is None
