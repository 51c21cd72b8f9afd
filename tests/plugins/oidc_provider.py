"""A strict OpenID Provider for testing the generic OIDC plugin's FAPI-style paths.

It requires what the sandbox bank does not offer: pushed authorization requests (RFC 9126),
``private_key_jwt`` client authentication (RFC 7523), signed ID tokens with a nonce (OpenID
Connect Core), and ``iss`` in responses (RFC 9207). It approves every request as one customer,
so tests read its redirect instead of driving a login page. State is in memory: it is a test
server, one per test.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from aggregator.testing.servers import reserve_port, serve_wsgi

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@cache
def shared_signing_key() -> RSAKey:
    """The providers' ID token key, made once per run (RSA key generation is slow)."""
    return RSAKey.generate_key(2048, auto_kid=True)


@dataclass
class OpenIDProvider:
    """The provider's state and knobs; ``url`` is its issuer once started."""

    client_id: str
    client_jwks: dict[str, Any]  # the client's public keys, as registered
    redirect_uri: str
    customer: str = "cust-4821"
    url: str = ""
    signing_key: RSAKey = field(default_factory=shared_signing_key)
    pushed: list[dict[str, str]] = field(default_factory=list)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests_by_uri: dict[str, dict[str, str]] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    #: sign ID tokens with this key instead (a forger's), to test that they are refused
    forged_id_token_key: RSAKey | None = None

    def approve(self, authorization_url: str) -> str:
        """Open the authorization URL; answer where the provider redirects the browser."""
        answer = requests.get(authorization_url, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def id_token(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        key = key or self.signing_key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def app(self) -> Flask:
        app = Flask(__name__)
        provider = self

        @app.get("/.well-known/openid-configuration")
        def metadata() -> Any:
            url = provider.url
            return {
                "issuer": url,
                "authorization_endpoint": f"{url}/authorize",
                "token_endpoint": f"{url}/token",
                "pushed_authorization_request_endpoint": f"{url}/par",
                "require_pushed_authorization_requests": True,
                "revocation_endpoint": f"{url}/revoke",
                "userinfo_endpoint": f"{url}/userinfo",
                "jwks_uri": f"{url}/jwks",
                "scopes_supported": ["openid", "offline_access", "accounts", "transactions"],
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "authorization_response_iss_parameter_supported": True,
            }

        @app.get("/jwks")
        def jwks() -> Any:
            return KeySet([provider.signing_key]).as_dict(private=False)

        @app.post("/par")
        def par() -> Any:
            refused = provider.authenticate_client()
            if refused:
                return refused
            params = {k: v for k, v in request.form.items() if not k.startswith("client_assertion")}
            if params.get("redirect_uri") != provider.redirect_uri:
                return _error("invalid_request", 400, "redirect_uri")
            if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
                return _error("invalid_request", 400, "PKCE S256 required")
            if not params.get("nonce"):
                return _error("invalid_request", 400, "nonce required")
            provider.pushed.append(params)
            request_uri = f"urn:ietf:params:oauth:request_uri:{secrets.token_urlsafe(16)}"
            provider.requests_by_uri[request_uri] = params
            return {"request_uri": request_uri, "expires_in": 60}, 201

        @app.get("/authorize")
        def authorize() -> Any:
            # RFC 9126 §4: with PAR required, only client_id and request_uri may arrive here.
            params = provider.requests_by_uri.pop(request.args.get("request_uri", ""), None)
            if params is None or request.args.get("client_id") != provider.client_id:
                return _error("invalid_request", 400, "a pushed request is required")
            code = secrets.token_urlsafe(24)
            provider.codes[code] = {**params, "sub": provider.customer}
            query = {"code": code, "state": params["state"], "iss": provider.url}
            return redirect(f"{params['redirect_uri']}?{urlencode(query)}")

        @app.post("/token")
        def token() -> Any:
            refused = provider.authenticate_client()
            if refused:
                return refused
            if request.form.get("grant_type") == "authorization_code":
                return provider.redeem_code()
            if request.form.get("grant_type") == "refresh_token":
                return provider.refresh()
            return _error("unsupported_grant_type", 400)

        @app.post("/revoke")
        def revoke() -> Any:
            refused = provider.authenticate_client()
            if refused:
                return refused
            provider.refresh_tokens.pop(request.form.get("token", ""), None)
            return {}

        @app.get("/userinfo")
        def userinfo() -> Any:
            grant = provider.access_tokens.get(request.headers.get("Authorization", "")[7:])
            if grant is None:
                return _error("invalid_token", 401)
            return {"sub": grant["sub"], "name": "Pat Customer", "region": "uk-south"}

        @app.get("/api/<region>/customers/<sub>/accounts")
        def accounts(region: str, sub: str) -> Any:
            grant = provider.access_tokens.get(request.headers.get("Authorization", "")[7:])
            if grant is None or grant["sub"] != sub:
                return _error("invalid_token", 401)
            return {"data": [{"id": "acc-1", "type": "cash:current"}]}

        return app

    # -- the protocol steps -------------------------------------------------------------------

    def authenticate_client(self) -> Any:
        """RFC 7523 §3 checks of a private_key_jwt assertion; None when it passes."""
        form = request.form
        if form.get("client_assertion_type") != ASSERTION_TYPE or "client_assertion" in (
            request.headers.get("Authorization") or ""
        ):
            return _error("invalid_client", 401, "private_key_jwt required")
        try:
            decoded = jwt.decode(form.get("client_assertion", ""),
                                 KeySet.import_key_set(self.client_jwks),  # type: ignore[arg-type]
                                 algorithms=["PS256", "RS256", "ES256"])
        except (JoseError, ValueError):
            return _error("invalid_client", 401, "bad signature")
        claims = decoded.claims
        audiences = claims["aud"] if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        accepted = {self.url, f"{self.url}/token", f"{self.url}{request.path}"}
        if (
            claims.get("iss") != self.client_id
            or claims.get("sub") != self.client_id
            or not accepted & set(audiences)
            or not isinstance(claims.get("exp"), int) or claims["exp"] < time.time()
            or claims.get("jti") in self.seen_jti
        ):
            return _error("invalid_client", 401, "bad assertion")
        self.seen_jti.add(claims["jti"])
        self.assertions.append({"header": decoded.header, "claims": claims, "path": request.path})
        return None

    def redeem_code(self) -> Any:
        grant = self.codes.pop(request.form.get("code", ""), None)
        if grant is None or request.form.get("redirect_uri") != grant["redirect_uri"]:
            return _error("invalid_grant", 400)
        verifier = request.form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != grant["code_challenge"]:
            return _error("invalid_grant", 400, "PKCE")
        now = int(time.time())
        id_token = self.id_token({"iss": self.url, "sub": grant["sub"], "aud": self.client_id,
                                  "exp": now + 300, "iat": now, "nonce": grant["nonce"]},
                                 key=self.forged_id_token_key)
        return self.issue(grant, grant["scope"], id_token=id_token)

    def refresh(self) -> Any:
        grant = self.refresh_tokens.pop(request.form.get("refresh_token", ""), None)
        if grant is None:
            return _error("invalid_grant", 400)
        scope = request.form.get("scope") or grant["scope"]
        if not set(scope.split()) <= set(grant["scope"].split()):
            return _error("invalid_scope", 400)
        return self.issue(grant, scope)

    def issue(self, grant: dict[str, Any], scope: str, **extra: str) -> Any:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = {**grant, "scope": scope}
        self.refresh_tokens[refresh] = grant  # rotation: the old one was popped
        return {"access_token": access, "token_type": "bearer", "expires_in": 600,
                "refresh_token": refresh, "scope": scope, **extra}


def _error(code: str, status: int, description: str | None = None) -> Any:
    body = {"error": code, **({"error_description": description} if description else {})}
    return jsonify(body), status


@contextmanager
def running(provider: OpenIDProvider) -> Iterator[OpenIDProvider]:
    port = reserve_port()
    provider.url = f"http://127.0.0.1:{port}/tenant"
    app = provider.app()
    # The issuer has a path, like many hosted providers: RFC 8414 §3.1 discovery is exercised.
    app.wsgi_app = _mounted("/tenant", app.wsgi_app)  # type: ignore[method-assign]
    with serve_wsgi(app, port=port):
        yield provider


def _mounted(prefix: str, wsgi_app: Any) -> Any:
    def mounted(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(prefix):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not_found"}']
        environ["SCRIPT_NAME"] = prefix
        environ["PATH_INFO"] = path[len(prefix):]
        return wsgi_app(environ, start_response)

    return mounted
