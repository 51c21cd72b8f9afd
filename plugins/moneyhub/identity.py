"""Moneyhub's identity service: the shared OIDC client plus what only Moneyhub has.

Discovery, keys, PAR, request objects and the token endpoint come from
:class:`~aggregator.upstream.oidc_client.OIDCClient`; here are Moneyhub's bank connection lists
and its user management API (seed 001), with the client-credentials tokens they need. What the
answers mean for registrations is decided in ``plugin.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import requests

from aggregator.upstream.client_auth import ClientCredentials
from aggregator.upstream.contract import PluginCache, UpstreamError, UpstreamUnavailable
from aggregator.upstream.http import UpstreamHTTP
from aggregator.upstream.oidc_client import OAuthRefusal, OIDCClient
from plugins.moneyhub.config import MoneyhubSettings

#: a cached client-credentials token is dropped this many seconds before it expires
TOKEN_MARGIN = 120


class MoneyhubIdentity(OIDCClient):
    """One Moneyhub API client (``client_id``) talking to the identity service."""

    #: Moneyhub signs its id_tokens; it takes only signed requests, pushed (PAR) or registered
    #: at its request object endpoint (seed 001): one of the two must be listed
    required_metadata = ("authorization_endpoint", "token_endpoint", "jwks_uri")

    def __init__(
        self,
        settings: MoneyhubSettings,
        cache: PluginCache,
        http: UpstreamHTTP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        credentials = ClientCredentials(settings.client_id, settings.auth_method,
                                        settings.client_secret, settings.signing_key)
        super().__init__(settings.issuer, credentials, http, cache, name="Moneyhub",
                         cache_ttl=settings.cache_ttl, clock=clock)
        self.settings = settings

    def discovery_urls(self) -> list[str]:
        """OpenID Connect Discovery §4 only: where seed 001 says Moneyhub publishes it."""
        return [f"{self.issuer}/.well-known/openid-configuration"]

    def signed_authorization_url(self, params: dict[str, Any]) -> str:
        """Sign ``params`` as a request object (RFC 9101) and hand it over by reference: pushed
        (RFC 9126) when the issuer lists PAR, else registered at the request object endpoint
        (seed 001 "POST /request", ``application/jws``, answered by ``urn:x-mh-request:...``)."""
        request_object = self.request_object(params)
        metadata = self.metadata()
        if metadata.get("pushed_authorization_request_endpoint"):
            return self.authorization_url({"request": request_object})
        endpoint = metadata.get("request_object_endpoint")
        if not isinstance(endpoint, str):
            raise UpstreamUnavailable("Moneyhub's metadata lists neither a PAR nor a request "
                                      "object endpoint.")
        response = self.send("POST", endpoint, data=request_object,
                             headers={"Content-Type": "application/jws", "Accept": "text/plain"})
        if response.status_code not in (200, 201):
            raise self.refusal(response)
        request_uri = response.text.strip()
        if not request_uri.startswith("urn:"):
            raise UpstreamUnavailable("Moneyhub's request object endpoint sent no request_uri.")
        authorize = metadata["authorization_endpoint"]
        # OIDC Core §6.1: response_type and a scope with openid travel outside the request
        # object too (seed 001's example URL carries scope)
        query = {"client_id": self.credentials.client_id, "request_uri": request_uri,
                 "scope": params["scope"], "response_type": params["response_type"]}
        return f"{authorize}{'&' if '?' in authorize else '?'}{urlencode(query)}"

    def banks(self, kind: str) -> list[dict[str, Any]]:
        """A bank connection list (seed 001 "Bank connections"), cached."""
        return self.cached(f"banks:{kind}", lambda: self._fetch_banks(kind))

    def _fetch_banks(self, kind: str) -> list[dict[str, Any]]:
        response = self.send("GET", f"{self.issuer}/.well-known/{kind}-connections")
        banks = self.json(response, "bank list") if response.status_code == 200 else None
        if not isinstance(banks, list):
            raise UpstreamUnavailable("Moneyhub's list of banks is unavailable.")
        return [b for b in banks if isinstance(b, dict) and isinstance(b.get("id"), str)]

    # ------------------------------------------------------------------ user management

    def refused(self, response: requests.Response, action: str) -> UpstreamError:
        """A REST answer that is no success, as an error naming ``action`` for people."""
        refusal = self.refusal(response)
        if isinstance(refusal, OAuthRefusal):
            return UpstreamError(refusal.explain(action))
        return refusal if isinstance(refusal, UpstreamError) else UpstreamError(str(refusal))

    def management_token(self, scope: str, *, fresh: bool = False) -> str:
        """A client-credentials token for one ``user:*`` scope, cached until near expiry."""
        key = f"management:{scope}"
        if not fresh:
            cached = self.cache.get(key)
            if cached:
                return cached
        try:
            body = self.client_credentials([scope])
        except OAuthRefusal as failure:
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
            raise self.refused(response, "create a user profile")
        body = self.json(response, "user")
        user = body.get("data", body) if isinstance(body, dict) else None
        if not isinstance(user, dict) or not isinstance(user.get("userId"), str):
            raise UpstreamUnavailable("Moneyhub created a user but sent no userId.")
        return user["userId"]

    def delete_user(self, user_id: str) -> None:
        """``DELETE /users/:id``; a user already gone counts as deleted."""
        response = self.users_api("DELETE", f"/users/{quote(user_id, safe='')}", "user:delete")
        if response.status_code not in (200, 204, 404):
            raise self.refused(response, "delete the user profile")

    def user_connections(self, user_id: str) -> list[dict[str, Any]] | None:
        """``GET /users/:id/connections``; None when the user no longer exists."""
        response = self.users_api(
            "GET", f"/users/{quote(user_id, safe='')}/connections", "user:read"
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.refused(response, "list the connections")
        body = self.json(response, "connection list")
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise UpstreamUnavailable("Moneyhub sent an unreadable connection list.")
        return [c for c in data if isinstance(c, dict) and isinstance(c.get("id"), str)]

    def delete_connection(self, user_id: str, connection_id: str) -> None:
        """``DELETE /users/:id/connection/:connection-id``; already gone counts as deleted."""
        path = f"/users/{quote(user_id, safe='')}/connection/{quote(connection_id, safe='')}"
        response = self.users_api("DELETE", path, "user:delete")
        if response.status_code not in (200, 204, 404):
            raise self.refused(response, "delete the connection")
