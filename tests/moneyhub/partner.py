"""A minimal Moneyhub partner built on Authlib and joserfc, used to drive the fake in its tests.

It is deliberately independent of the plugin: the fake's tests must not trust the code the fake
is there to test.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from tests.fixtures.moneyhub import DEFAULT_REDIRECT_URI, MoneyhubClientCredentials, MoneyhubFake


class Partner:
    """One API client of the fake: token requests, request objects, PAR and the journey."""

    def __init__(self, fake: MoneyhubFake, credentials: MoneyhubClientCredentials) -> None:
        self.fake = fake
        self.credentials = credentials
        self.token_endpoint = f"{fake.issuer}/token"
        self.key: RSAKey | ECKey | None = None
        if credentials.private_jwks:
            self.key = KeySet.import_key_set(credentials.private_jwks).keys[0]  # type: ignore
        if credentials.auth_method == "private_key_jwt":
            assert self.key is not None
            self.session = OAuth2Session(
                credentials.client_id, self.key, token_endpoint_auth_method="private_key_jwt"
            )
            self.session.register_client_auth_method(
                PrivateKeyJWT(
                    self.token_endpoint, alg=credentials.signing_alg,
                    headers={"kid": self.key.kid},
                )
            )
        else:
            self.session = OAuth2Session(
                credentials.client_id, credentials.client_secret,
                token_endpoint_auth_method="client_secret_basic",
            )

    # ----------------------------------------------------------------- client-authenticated

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        """POST a form with this client's authentication (Authlib's client auth)."""
        auth = self.session.client_auth(self.credentials.auth_method)
        return self.session.post(url, data=data, auth=auth, withhold_token=True)

    def token(self, **form: str) -> requests.Response:
        return self.post(self.token_endpoint, form)

    def client_credentials(self, scope: str, sub: str | None = None) -> str:
        form = {"grant_type": "client_credentials", "scope": scope}
        if sub:
            form["sub"] = sub
        response = self.token(**form)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def create_user(self, client_user_id: str = "person-1") -> dict[str, Any]:
        token = self.client_credentials("user:create")
        response = requests.post(
            f"{self.fake.identity_url}/users",
            json={"clientUserId": client_user_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        return response.json()

    # ----------------------------------------------------------------- request objects

    def request_object(self, **claims: Any) -> str:
        """A signed request object; ``claims`` override the defaults, ``None`` removes one."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.credentials.client_id,
            "aud": self.fake.issuer,
            "client_id": self.credentials.client_id,
            "response_type": "code",
            "redirect_uri": DEFAULT_REDIRECT_URI,
            "scope": "openid id:test",
            "state": "state-" + uuid.uuid4().hex,
            "nonce": "nonce-" + uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        alg = self.credentials.signing_alg
        if alg.startswith("HS"):
            key: Any = OctKey.import_key(self.credentials.client_secret or "")
            return jwt.encode({"alg": alg}, body, key, algorithms=[alg])
        assert self.key is not None
        return jwt.encode({"alg": alg, "kid": self.key.kid}, body, self.key, algorithms=[alg])

    def push(self, **claims: Any) -> requests.Response:
        return self.post(f"{self.fake.issuer}/request", {"request": self.request_object(**claims)})

    def authorize(self, request_uri: str) -> requests.Response:
        return requests.get(
            f"{self.fake.issuer}/auth",
            params={"client_id": self.credentials.client_id, "request_uri": request_uri},
            allow_redirects=False,
            timeout=5,
        )

    def journey(self, **claims: Any) -> dict[str, str]:
        """PAR, then the (auto-approving) authorization: the redirect's parameters."""
        pushed = self.push(**claims)
        assert pushed.status_code == 201, pushed.text
        response = self.authorize(pushed.json()["request_uri"])
        assert response.status_code == 302, response.text
        return redirect_params(response.headers["Location"])


def redirect_params(location: str) -> dict[str, str]:
    """Query or fragment parameters of an authorization response redirect."""
    parts = urlsplit(location)
    return dict(parse_qsl(parts.fragment or parts.query))


def connect_claims(user_id: str, **extra: Any) -> dict[str, Any]:
    """The ``claims`` member for adding a connection to ``user_id`` (seed 001 "Claims")."""
    id_token: dict[str, Any] = {
        "sub": {"essential": True, "value": user_id},
        "mh:con_id": {"essential": True},
    }
    id_token.update(extra)
    return {"id_token": id_token}


def consent_claims(user_id: str, consent: dict[str, Any]) -> dict[str, Any]:
    return connect_claims(user_id, **{"mh:consent": {"essential": True, "value": consent}})

