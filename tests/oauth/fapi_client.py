"""A FAPI 2.0 app as a developer writes one: Authlib's ``OAuth2Session`` with ``private_key_jwt``
(Authlib's ``PrivateKeyJWT``, audience the issuer) and DPoP proofs signed with joserfc, sent by
a small ``requests`` auth class of our own (Authlib's client has no DPoP)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import DATA, REDIRECT, App, decide, walk


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DPoPKey:
    """The app's DPoP key and the proofs it signs (RFC 9449 §4.2); ``nonce``: the server's (§8)."""

    def __init__(self, kind: str = "EC") -> None:
        self.key: ECKey | RSAKey = (ECKey.generate_key("P-256", private=True) if kind == "EC"
                                    else RSAKey.generate_key(2048, private=True))
        self.alg = "ES256" if kind == "EC" else "PS256"
        self.nonce: str | None = None

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, method: str, url: str, *, token: str | None = None, alg: str | None = None,
              header: dict | None = None, **claims: Any) -> str:
        """A proof for ``method`` at ``url`` (with ``token``'s hash); ``header`` adds to or
        overrides the protected header, ``claims`` the payload (to forge bad proofs)."""
        payload: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url,
                                   "iat": int(time.time())}
        if token is not None:
            payload["ath"] = b64(hashlib.sha256(token.encode()).digest())
        if self.nonce is not None:
            payload["nonce"] = self.nonce
        payload.update(claims)
        alg = alg or self.alg
        protected = {"typ": "dpop+jwt", "alg": alg, "jwk": self.key.as_dict(private=False),
                     **(header or {})}
        return jws.serialize_compact(protected, json.dumps(payload), self.key, algorithms=[alg])


class DPoPAuth(requests.auth.AuthBase):
    """A fresh proof for every request (htu: its URL without query and fragment, §4.2); with an
    access token, ``Authorization: DPoP`` and the token's hash in the proof (§7.1)."""

    def __init__(self, key: DPoPKey, token: str | None = None) -> None:
        self.key = key
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        htu = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        request.headers["DPoP"] = self.key.proof(request.method or "GET", htu, token=self.token)
        if self.token is not None:
            request.headers["Authorization"] = f"DPoP {self.token}"
        return request


class FapiApp:
    """A registered confidential app: its Authlib session and its DPoP key."""

    def __init__(self, server: LiveAS, app: App, dpop_key: DPoPKey | None = None) -> None:
        self.server = server
        self.app = app
        self.dpop = dpop_key or DPoPKey()
        self.metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
        self.session = OAuth2Session(
            app.client_id, app.key, token_endpoint_auth_method="private_key_jwt",
            scope=f"openid offline_access {DATA}", redirect_uri=REDIRECT, code_challenge_method="S256",
        )
        # FAPI 2.0 §5.3.2.1: the assertion's audience is the issuer identifier, as a string
        self.session.register_client_auth_method(PrivateKeyJWT(server.url, alg="PS256"))

    def push(self, verifier: str, *, proof: bool = True, **extra: str) -> requests.Response:
        """PAR (RFC 9126) with a DPoP proof binding the code to the app's key (RFC 9449 §10)."""
        url, self.state = self.session.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6", **extra)
        return self.session.post(self.metadata["pushed_authorization_request_endpoint"],
                                 data=dict(parse_qsl(urlsplit(url).query)),
                                 auth=self.session.client_auth("private_key_jwt"), withhold_token=True,
                                 headers={"DPoP": self.dpop.proof("POST", f"{self.server.url}/par")}
                                 if proof else {})

    def sign_in(self, agent: PersonAgent, **extra: str) -> tuple[str, str]:
        """PAR, the person consents; returns (the redirect's location, the PKCE verifier)."""
        verifier = generate_token(64)
        pushed = self.push(verifier, **extra)
        assert pushed.status_code == 201, pushed.text
        page = walk(agent, f"{self.metadata['authorization_endpoint']}?client_id={self.app.client_id}"
                           f"&request_uri={pushed.json()['request_uri']}")
        if page.status_code == 200 and 'name="decision"' in page.text:
            page = decide(agent, page)
        assert page.status_code in (302, 303), page.text[:500]
        return page.headers["Location"], verifier

    def fetch_token(self, location: str, verifier: str, *, proof: bool = True) -> dict[str, Any]:
        headers = {"DPoP": self.dpop.proof("POST", self.metadata["token_endpoint"])} if proof else {}
        return self.session.fetch_token(self.metadata["token_endpoint"], authorization_response=location,
                                        code_verifier=verifier, state=self.state, headers=headers)

    def token_request(self, data: dict[str, str], *, proof: bool = True) -> requests.Response:
        """A raw token request with a fresh assertion (and a proof); the answer, whatever it is."""
        headers = {"DPoP": self.dpop.proof("POST", self.metadata["token_endpoint"])} if proof else {}
        return self.app.post("/token", data, headers=headers)

    def userinfo(self, token: str) -> requests.Response:
        return requests.get(self.metadata["userinfo_endpoint"], auth=DPoPAuth(self.dpop, token), timeout=10)
