"""Our client at one upstream OAuth 2.0 / OpenID Connect server: the toolkit plugins share.

Discovery (RFC 8414, OpenID Connect Discovery) and the issuer's keys, both cached through the
plugin's cache; pushed authorization requests (RFC 9126) and signed request objects (RFC 9101);
PKCE S256 (RFC 7636); the token endpoint (RFC 6749 §4.1.3, §4.4, §6) with the client
authentication of :mod:`aggregator.upstream.client_auth`; revocation (RFC 7009); userinfo and ID
token verification (:mod:`aggregator.upstream.id_tokens`).

Failures are the contract's typed errors: an upstream that cannot be reached, answers 429 or
5xx, or sends nonsense is :class:`UpstreamUnavailable`; an OAuth error it answers is an
:class:`OAuthRefusal` for the plugin to classify (``invalid_grant`` usually means reconnect).
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from aggregator.upstream.client_auth import ClientCredentials
from aggregator.upstream.contract import (
    LinkDenied,
    LinkInvalid,
    PluginCache,
    UpstreamToken,
    UpstreamUnavailable,
)
from aggregator.upstream.http import UpstreamHTTP
from aggregator.upstream.id_tokens import IdTokenVerifier

#: seconds discovery documents and key sets are cached by default
METADATA_TTL = 3600
#: request objects live this long (seconds)
REQUEST_OBJECT_LIFETIME = 300
#: lifetime assumed for an access token whose response has no ``expires_in``
DEFAULT_EXPIRES_IN = 300
#: OAuth error codes that mean "try again later", not "no" (RFC 6749 §4.1.2.1)
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


class OAuthRefusal(Exception):
    """The upstream answered an OAuth error (RFC 6749 §5.2): ``error`` is its code."""

    def __init__(self, status: int, error: str, description: str = "", *,
                 upstream: str = "The institution") -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.upstream = upstream

    def explain(self, action: str) -> str:
        """A message for people: what failed, and the upstream's own words (shortened)."""
        detail = f" ({self.description[:200]})" if self.description else ""
        return f"{self.upstream} refused to {action}: {self.error}{detail}."


def upstream_token(response: Mapping[str, Any], now: float | None = None) -> UpstreamToken:
    """A token response (RFC 6749 §5.1) as the contract's :class:`UpstreamToken`."""
    expires_in = response.get("expires_in")
    lifetime = int(expires_in) if isinstance(expires_in, int | float) else DEFAULT_EXPIRES_IN
    token_type = str(response.get("token_type") or "Bearer")
    return UpstreamToken(
        access_token=response["access_token"],
        expires_at=int(now if now is not None else time.time()) + lifetime,
        # RFC 6749 §5.1: token_type is case-insensitive; apps send "Bearer" (RFC 6750 §2.1).
        token_type="Bearer" if token_type.lower() == "bearer" else token_type,
        scope=response.get("scope"),
    )


def pkce() -> tuple[str, dict[str, str]]:
    """A PKCE code verifier (RFC 7636 §4.1, 48 characters) and the authorization request
    parameters that carry its S256 challenge (§4.2, §4.3)."""
    verifier = generate_token(48)
    return verifier, {"code_challenge": create_s256_code_challenge(verifier),
                      "code_challenge_method": "S256"}


class OIDCClient:
    """One issuer as our client sees it: its metadata, keys, and the requests we make to it.

    ``name`` starts the messages people see ("The institution", "Moneyhub"). Subclasses add
    what one upstream offers beyond the standards and may narrow :meth:`discovery_urls` or
    widen :attr:`required_metadata`.
    """

    #: metadata members this client cannot work without
    required_metadata: tuple[str, ...] = ("authorization_endpoint", "token_endpoint")

    def __init__(
        self,
        issuer: str,
        credentials: ClientCredentials,
        http: UpstreamHTTP,
        cache: PluginCache,
        *,
        name: str = "The institution",
        cache_ttl: int = METADATA_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.credentials = credentials
        self.http = http
        self.cache = cache
        self.name = name
        self.cache_ttl = cache_ttl
        self.clock = clock

    # -- transport ----------------------------------------------------------------------------

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One exchange through ``context.http``; 429 and 5xx mean "try again later"."""
        response = self.http.request(method, url, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            raise UpstreamUnavailable(
                f"{self.name} is unavailable (HTTP {response.status_code}); try again later."
            )
        return response

    def json(self, response: requests.Response, what: str) -> Any:
        """The response's JSON body; an unreadable one is an outage, not a refusal."""
        try:
            return response.json()
        except ValueError:
            raise UpstreamUnavailable(f"{self.name} sent an unreadable {what}.") from None

    def refusal(self, response: requests.Response) -> Exception:
        """What a 4xx answer means: an :class:`OAuthRefusal`, or an outage for transient codes."""
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        error = str(body.get("error") or f"http_{response.status_code}")
        if error in TRANSIENT_ERRORS:
            return UpstreamUnavailable(f"{self.name} is temporarily unavailable.")
        description = str(body.get("error_description") or body.get("message") or "")
        return OAuthRefusal(response.status_code, error, description, upstream=self.name)

    def cached(self, key: str, fetch: Callable[[], Any], *, refresh: bool = False) -> Any:
        """``fetch()``'s value, kept ``cache_ttl`` seconds in the plugin's cache (0: not kept)."""
        if not refresh:
            value = self.cache.get(key)
            if value is not None:
                return value
        value = fetch()
        if self.cache_ttl:
            self.cache.set(key, value, ttl=self.cache_ttl)
        return value

    # -- discovery ----------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The issuer's metadata, cached."""
        return self.cached(f"metadata:{self.issuer}", self._discover)

    def discovery_urls(self) -> list[str]:
        """Where metadata may live, in the order tried: RFC 8414 §3.1 (well-known segment
        before the issuer's path), OpenID Connect Discovery §4, then issuer-relative RFC 8414."""
        parts = urlsplit(self.issuer)
        inserted = urlunsplit(
            parts._replace(path=f"/.well-known/oauth-authorization-server{parts.path}")
        )
        return [
            inserted,
            f"{self.issuer}/.well-known/openid-configuration",
            f"{self.issuer}/.well-known/oauth-authorization-server",
        ]

    def _discover(self) -> dict[str, Any]:
        for url in self.discovery_urls():
            response = self.send("GET", url, headers={"Accept": "application/json"})
            if response.status_code == 404:
                continue
            document = self.json(response, "metadata document")
            if response.status_code != 200 or not isinstance(document, dict):
                raise UpstreamUnavailable(f"{self.name}'s server metadata is unavailable.")
            # RFC 8414 §3.3 / OIDC Discovery §4.3: the issuer MUST be the one asked for, or
            # an attacker's metadata could stand in for the real server's.
            if document.get("issuer") != self.issuer:
                raise UpstreamUnavailable(f"{self.name}'s metadata names another issuer.")
            for member in self.required_metadata:
                if not isinstance(document.get(member), str):
                    raise UpstreamUnavailable(f"{self.name}'s metadata has no {member}.")
            return document
        raise UpstreamUnavailable(f"{self.name} publishes no server metadata.")

    def jwks(self, refresh: bool = False) -> dict[str, Any]:
        """The issuer's public keys (``jwks_uri``); ``refresh`` bypasses the cache."""
        return self.cached(f"jwks:{self.issuer}", self._fetch_jwks, refresh=refresh)

    def _fetch_jwks(self) -> dict[str, Any]:
        uri = self.metadata().get("jwks_uri")
        if not isinstance(uri, str):
            raise LinkInvalid(f"{self.name} sent an ID token but publishes no keys.")
        response = self.send("GET", uri, headers={"Accept": "application/json"})
        keys = self.json(response, "key set") if response.status_code == 200 else None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise UpstreamUnavailable(f"{self.name}'s signing keys are unavailable.")
        return keys

    # -- the authorization request ------------------------------------------------------------

    def request_object(self, params: Mapping[str, Any]) -> str:
        """A signed request object (RFC 9101 §4): the parameters plus iss, aud, exp, jti."""
        now = int(self.clock())
        client_id = self.credentials.client_id
        return self.credentials.sign({
            "iss": client_id, "aud": self.issuer, "client_id": client_id, "iat": now,
            "nbf": now, "exp": now + REQUEST_OBJECT_LIFETIME, "jti": uuid.uuid4().hex,
            **params,
        })

    def authorization_url(self, params: Mapping[str, Any]) -> str:
        """The URL to send the browser to, pushing ``params`` first when the upstream has a
        PAR endpoint (RFC 9126 §4: then only ``client_id`` and ``request_uri`` travel)."""
        metadata = self.metadata()
        endpoint = metadata["authorization_endpoint"]
        query = {"client_id": self.credentials.client_id, **params}
        par_endpoint = metadata.get("pushed_authorization_request_endpoint")
        if par_endpoint:
            query = {"client_id": self.credentials.client_id,
                     "request_uri": self.push(par_endpoint, query)}
        separator = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{urlencode(query)}"

    def push(self, par_endpoint: str, params: Mapping[str, Any]) -> str:
        """RFC 9126 §2: a client-authenticated POST of the parameters; the ``request_uri``."""
        response = self._authenticated_post(par_endpoint, dict(params))
        if response.status_code not in (200, 201):
            raise self.refusal(response)
        body = self.json(response, "PAR response")
        if not isinstance(body, dict) or not isinstance(body.get("request_uri"), str):
            raise UpstreamUnavailable(f"{self.name}'s PAR response has no request_uri.")
        return body["request_uri"]

    def authorization_code(self, params: Mapping[str, str]) -> str:
        """The code of an authorization response (RFC 6749 §4.1.2), after its checks: an error
        response (§4.1.2.1) raises :class:`LinkDenied` (or :class:`UpstreamUnavailable` for a
        transient one), a response from another issuer :class:`LinkInvalid` (RFC 9207)."""
        error = params.get("error")
        # RFC 9207: a response naming another issuer is refused outright. A missing ``iss``
        # only matters where there is a code to exchange: an error response hands nothing
        # over that a mix-up attacker could use.
        if params.get("iss") is not None or not error:
            self.check_issuer_parameter(params)
        if error:
            if error in TRANSIENT_ERRORS:
                raise UpstreamUnavailable(f"{self.name} is temporarily unavailable.")
            raise LinkDenied(f"{self.name} did not grant access"
                             + (" (you said no)." if error == "access_denied" else f" ({error[:60]})."))
        code = params.get("code")
        if not code:
            raise LinkInvalid(f"{self.name} did not send an authorization code.")
        return code

    def check_issuer_parameter(self, params: Mapping[str, str]) -> None:
        """RFC 9207 §2.4: a callback's ``iss`` must name this issuer; it must be there when the
        upstream says it always sends it. Stops mix-up attacks between institutions."""
        iss = params.get("iss")
        if iss is None:
            if self.metadata().get("authorization_response_iss_parameter_supported"):
                raise LinkInvalid(f"{self.name}'s response does not name its issuer.")
            return
        if not hmac.compare_digest(iss.encode(), self.issuer.encode()):
            raise LinkInvalid("The response comes from another institution's server.")

    # -- the token endpoint -------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        """One token request (RFC 6749 §5.1); an OAuth error raises :class:`OAuthRefusal`."""
        response = self._authenticated_post(self.metadata()["token_endpoint"], form)
        if response.status_code != 200:
            raise self.refusal(response)
        body = self.json(response, "token response")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise UpstreamUnavailable(f"{self.name} sent a token response without an access token.")
        return body

    def exchange_code(self, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> dict[str, Any]:
        """RFC 6749 §4.1.3, with the PKCE verifier (RFC 7636 §4.5) when one was sent."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return self.token(form)

    def refresh(self, refresh_token: str, scope: str | None = None) -> dict[str, Any]:
        """RFC 6749 §6; ``scope`` narrows the new access token."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope:
            form["scope"] = scope
        return self.token(form)

    def client_credentials(self, scopes: Iterable[str], **extra: str) -> dict[str, Any]:
        """RFC 6749 §4.4, for the scopes given (sorted, each once)."""
        return self.token({"grant_type": "client_credentials",
                           "scope": " ".join(sorted(set(scopes))), **extra})

    def revoke(self, token: str, token_type_hint: str) -> bool:
        """RFC 7009 §2.1; False when the upstream has no revocation endpoint."""
        endpoint = self.metadata().get("revocation_endpoint")
        if not isinstance(endpoint, str):
            return False
        response = self._authenticated_post(
            endpoint, {"token": token, "token_type_hint": token_type_hint}
        )
        # RFC 7009 §2.2: an unknown or already revoked token is a 200 as well.
        if response.status_code != 200:
            raise self.refusal(response)
        return True

    def _authenticated_post(self, endpoint: str, form: dict[str, str]) -> requests.Response:
        data, auth = self.credentials.authenticate(
            form, self.metadata()["token_endpoint"], self.clock()
        )
        return self.send("POST", endpoint, data=data, auth=auth,
                         headers={"Accept": "application/json"})

    # -- who is this? -------------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo endpoint's claims (OpenID Connect Core §5.3); empty when it has none."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        response = self.send("GET", endpoint, headers={"Authorization": f"Bearer {access_token}",
                                                       "Accept": "application/json"})
        claims = self.json(response, "userinfo response") if response.status_code == 200 else None
        if not isinstance(claims, dict):
            raise UpstreamUnavailable(f"{self.name}'s userinfo endpoint failed.")
        return claims

    def id_tokens(self) -> IdTokenVerifier:
        """A verifier of this issuer's ID tokens for our client, with its advertised algorithms."""
        return IdTokenVerifier(
            self.issuer, self.credentials.client_id, self.jwks,
            self.metadata().get("id_token_signing_alg_values_supported"),
            name=self.name, clock=self.clock,
        )
