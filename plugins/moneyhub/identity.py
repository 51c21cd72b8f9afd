"""HTTP client of Moneyhub's identity service: discovery, keys, tokens, PAR, users, banks.

Only transport and protocol live here; what the answers mean for registrations is decided in
``plugin.py``. Network failures, timeouts, 429 and 5xx become :class:`UpstreamUnavailable`;
OAuth error answers become :class:`OAuthFailure` for the caller to interpret.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

import requests
from joserfc import jwt
from joserfc.jwk import OctKey

from aggregator.upstream.contract import PluginCache, UpstreamError, UpstreamUnavailable
from aggregator.upstream.http import UpstreamHTTP
from plugins.moneyhub.config import MoneyhubSettings

log = logging.getLogger("plugins.moneyhub")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: a cached client-credentials token is dropped this many seconds before it expires
TOKEN_MARGIN = 120
#: request objects and client assertions live this long (seconds)
JWT_LIFETIME = 300


class OAuthFailure(Exception):
    """Moneyhub answered an OAuth/REST error (4xx): ``error`` is its RFC 6749 §5.2 code."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def explain(self, action: str) -> str:
        """A message for people: what failed, and Moneyhub's own words (shortened)."""
        detail = f" ({self.description[:200]})" if self.description else ""
        return f"Moneyhub refused to {action}: {self.error}{detail}."


class MoneyhubIdentity:
    """One Moneyhub API client (``client_id``) talking to the identity service."""

    def __init__(
        self,
        settings: MoneyhubSettings,
        cache: PluginCache,
        http: UpstreamHTTP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.http = http
        self.clock = clock

    # ------------------------------------------------------------------ transport

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP exchange; outages become :class:`UpstreamUnavailable`."""
        response = self.http.request(method, url, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            raise UpstreamUnavailable(
                f"Moneyhub is unavailable (HTTP {response.status_code}); try again later."
            )
        return response

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UpstreamUnavailable(f"Moneyhub sent an unreadable {what}.") from None

    def _failure(self, response: requests.Response) -> OAuthFailure:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return OAuthFailure(
            response.status_code,
            str(body.get("error") or f"http_{response.status_code}"),
            str(body.get("error_description") or body.get("message") or ""),
        )

    # ------------------------------------------------------------------ metadata (cached)

    def _cached(self, key: str, fetch: Callable[[], Any], *, refresh: bool = False) -> Any:
        if not refresh:
            value = self.cache.get(key)
            if value is not None:
                return value
        value = fetch()
        if self.settings.cache_ttl:
            self.cache.set(key, value, ttl=self.settings.cache_ttl)
        return value

    def metadata(self) -> dict[str, Any]:
        """The discovery document (OIDC Discovery §4), cached for ``cache_ttl`` seconds."""
        return self._cached("discovery", self._fetch_metadata)

    def _fetch_metadata(self) -> dict[str, Any]:
        url = f"{self.settings.issuer}/.well-known/openid-configuration"
        response = self.send("GET", url)
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"Moneyhub's discovery document is unavailable (HTTP {response.status_code})."
            )
        document = self._json(response, "discovery document")
        # OIDC Discovery §4.3: the issuer MUST be identical to the one discovery was asked of
        if not isinstance(document, dict) or document.get("issuer") != self.settings.issuer:
            raise UpstreamError(
                "Moneyhub's discovery document names another issuer; check MONEYHUB_IDENTITY_URL."
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri",
                     "pushed_authorization_request_endpoint"):
            if not isinstance(document.get(name), str):
                raise UpstreamError(f"Moneyhub's discovery document lacks {name}.")
        return document

    def jwks(self, refresh: bool = False) -> dict[str, Any]:
        """Moneyhub's public keys; ``refresh`` bypasses the cache (key rotation)."""
        return self._cached("jwks", self._fetch_jwks, refresh=refresh)

    def _fetch_jwks(self) -> dict[str, Any]:
        response = self.send("GET", self.metadata()["jwks_uri"])
        keys = self._json(response, "key set") if response.status_code == 200 else None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise UpstreamUnavailable("Moneyhub's signing keys are unavailable.")
        return keys

    def banks(self, kind: str) -> list[dict[str, Any]]:
        """A bank connection list (seed 001 "Bank connections"), cached."""
        return self._cached(f"banks:{kind}", lambda: self._fetch_banks(kind))

    def _fetch_banks(self, kind: str) -> list[dict[str, Any]]:
        response = self.send("GET", f"{self.settings.issuer}/.well-known/{kind}-connections")
        banks = self._json(response, "bank list") if response.status_code == 200 else None
        if not isinstance(banks, list):
            raise UpstreamUnavailable("Moneyhub's list of banks is unavailable.")
        return [b for b in banks if isinstance(b, dict) and isinstance(b.get("id"), str)]

    # ------------------------------------------------------------------ signing

    def _sign(self, claims: dict[str, Any]) -> str:
        """Sign with the private JWKS's first key (``kid`` in the header), else HS256 with the
        client secret (ARCHITECTURE.md, Plugins)."""
        key = self.settings.signing_key
        if key is not None:
            header = {"alg": key.alg, "kid": key.kid}
            return jwt.encode(header, claims, key.key, algorithms=[key.alg])
        secret = OctKey.import_key(self.settings.client_secret or "")
        return jwt.encode({"alg": "HS256"}, claims, secret, algorithms=["HS256"])

    def request_object(self, params: dict[str, Any]) -> str:
        """A signed request object (RFC 9101 §4): OAuth parameters plus iss/aud/exp/jti."""
        now = int(self.clock())
        claims = {
            "iss": self.settings.client_id,
            "aud": self.settings.issuer,
            "client_id": self.settings.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + JWT_LIFETIME,
            "jti": uuid.uuid4().hex,
            **params,
        }
        return self._sign(claims)

    def _authenticate(self, form: dict[str, str]) -> tuple[dict[str, str], Any]:
        """Client authentication (form additions, requests ``auth``) by the configured method."""
        if self.settings.auth_method == "private_key_jwt":
            now = int(self.clock())
            # RFC 7523 §3: iss = sub = client_id, aud = the token endpoint, exp, unique jti
            assertion = self._sign({
                "iss": self.settings.client_id,
                "sub": self.settings.client_id,
                "aud": self.metadata()["token_endpoint"],
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            })
            return {**form, "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": assertion}, None
        # RFC 6749 §2.3.1: form-urlencode id and secret before HTTP Basic encoding
        return form, (
            quote(self.settings.client_id, safe=""),
            quote(self.settings.client_secret or "", safe=""),
        )

    # ------------------------------------------------------------------ OAuth endpoints

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        """A token endpoint request; OAuth errors raise :class:`OAuthFailure`."""
        data, auth = self._authenticate(form)
        response = self.send("POST", self.metadata()["token_endpoint"], data=data, auth=auth)
        if response.status_code != 200:
            raise self._failure(response)
        body = self._json(response, "token response")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise UpstreamUnavailable("Moneyhub sent a token response without an access token.")
        return body

    def client_credentials(self, scopes: Iterable[str], sub: str | None = None) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "scope": " ".join(sorted(set(scopes)))}
        if sub is not None:
            form["sub"] = sub
        return self.token(form)

    def push(self, request_object: str) -> str:
        """RFC 9126 §2: push the signed request object; returns the ``request_uri``."""
        data, auth = self._authenticate({"request": request_object})
        endpoint = self.metadata()["pushed_authorization_request_endpoint"]
        response = self.send("POST", endpoint, data=data, auth=auth)
        if response.status_code not in (200, 201):
            raise self._failure(response)
        body = self._json(response, "PAR response")
        if not isinstance(body, dict) or not isinstance(body.get("request_uri"), str):
            raise UpstreamUnavailable("Moneyhub's PAR response has no request_uri.")
        return body["request_uri"]

    def authorization_url(self, request_uri: str) -> str:
        """RFC 9126 §4: only client_id and request_uri go through the browser."""
        query = urlencode({"client_id": self.settings.client_id, "request_uri": request_uri})
        return f"{self.metadata()['authorization_endpoint']}?{query}"

    # ------------------------------------------------------------------ user management

    def management_token(self, scope: str, *, fresh: bool = False) -> str:
        """A client-credentials token for one ``user:*`` scope, cached until near expiry."""
        key = f"management:{scope}"
        if not fresh:
            cached = self.cache.get(key)
            if cached:
                return cached
        try:
            body = self.client_credentials([scope])
        except OAuthFailure as failure:
            raise UpstreamError(failure.explain(f"issue a {scope} token")) from None
        lifetime = int(body.get("expires_in") or 0) - TOKEN_MARGIN
        if lifetime > 0:
            self.cache.set(key, body["access_token"], ttl=lifetime)
        return body["access_token"]

    def users_api(self, method: str, path: str, scope: str, **kwargs: Any) -> requests.Response:
        """Call ``{identity}{path}`` with a ``scope`` token; one retry if the token was refused."""
        url = f"{self.settings.identity_url}{path}"
        for fresh in (False, True):
            token = self.management_token(scope, fresh=fresh)
            response = self.send(method, url, headers={"Authorization": f"Bearer {token}"},
                                 **kwargs)
            if response.status_code != 401:
                break
        if response.status_code in (401, 403):
            raise UpstreamError(
                f"Moneyhub refused our {scope} token; check the API client's scopes in "
                "Moneyhub's admin portal."
            )
        return response

    def create_user(self, client_user_id: str) -> str:
        """``POST /users`` (seed 001): a Moneyhub user for one of our people."""
        response = self.users_api("POST", "/users", "user:create",
                                  json={"clientUserId": client_user_id})
        if response.status_code not in (200, 201):
            raise UpstreamError(self._failure(response).explain("create a user profile"))
        body = self._json(response, "user")
        user = body.get("data", body) if isinstance(body, dict) else None
        if not isinstance(user, dict) or not isinstance(user.get("userId"), str):
            raise UpstreamUnavailable("Moneyhub created a user but sent no userId.")
        return user["userId"]

    def delete_user(self, user_id: str) -> None:
        """``DELETE /users/:id``; a user already gone counts as deleted."""
        response = self.users_api("DELETE", f"/users/{quote(user_id, safe='')}", "user:delete")
        if response.status_code not in (200, 204, 404):
            raise UpstreamError(self._failure(response).explain("delete the user profile"))

    def user_connections(self, user_id: str) -> list[dict[str, Any]] | None:
        """``GET /users/:id/connections``; None when the user no longer exists."""
        response = self.users_api(
            "GET", f"/users/{quote(user_id, safe='')}/connections", "user:read"
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(self._failure(response).explain("list the connections"))
        body = self._json(response, "connection list")
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise UpstreamUnavailable("Moneyhub sent an unreadable connection list.")
        return [c for c in data if isinstance(c, dict) and isinstance(c.get("id"), str)]

    def delete_connection(self, user_id: str, connection_id: str) -> None:
        """``DELETE /users/:id/connection/:connection-id``; already gone counts as deleted."""
        path = f"/users/{quote(user_id, safe='')}/connection/{quote(connection_id, safe='')}"
        response = self.users_api("DELETE", path, "user:delete")
        if response.status_code not in (200, 204, 404):
            raise UpstreamError(self._failure(response).explain("delete the connection"))
