"""The Grapher as an OAuth 2.0 / OpenID Connect client of the person's authorization server.

Written the way any third-party developer would: Authlib's requests client for the protocol
(``OAuth2Session`` + ``PrivateKeyJWT``), joserfc for keys and the ID token, plain ``requests``
for discovery and registration. Nothing here knows how the AS is built. In FAPI 2.0 mode the
tokens are DPoP-bound (RFC 9449) through the auth hook in :mod:`examples.grapher.dpop`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from examples.grapher.dpop import DPoPAuth, DPoPKey
from examples.grapher.keys import ClientKey
from examples.grapher.settings import GrapherSettings

#: what the Grapher asks for: who you are, a refresh token, and read access to your finances
SCOPE = "openid offline_access accounts:read balances:read transactions:read"
#: registered too, for the "Pay" action (examples/grapher/payments.py), which has its own callback
PAY_SCOPE = "payments"
PAY_CALLBACK = "/pay/callback"
CLIENT_NAME = "Grapher"
#: FAPI 2.0 Security Profile §5.4.1: the signing algorithms allowed (EdDSA aside, which the AS lacks)
FAPI2_ALGS = ("PS256", "ES256")


class ASError(Exception):
    """The AS cannot be used as asked; ``str(exc)`` is written for the person.

    ``error`` is the AS's OAuth error code when it sent one (RFC 6749 §5.2).
    """

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class AccessEnded(ASError):
    """The AS says the Grapher's access is over (token inactive, grant revoked)."""


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ASError(f"The {what} answered HTTP {response.status_code} without a JSON object.")
    return body


def _oauth_failure(what: str, body: Mapping[str, Any], status: int) -> ASError:
    detail = body.get("error_description") or body.get("error") or f"HTTP {status}"
    error = body.get("error") if isinstance(body.get("error"), str) else None
    return ASError(f"The {what} refused the request: {detail}", error)


@dataclass(frozen=True)
class Provider:
    """An authorization server's metadata (OpenID Connect Discovery 1.0 / RFC 8414)."""

    issuer: str
    metadata: Mapping[str, Any]

    def endpoint(self, name: str) -> str:
        value = self.metadata.get(name)
        if not isinstance(value, str) or not value:
            raise ASError(f"Your Authorization Server does not publish a {name}.")
        return value

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def discover(cls, url: str, http: requests.Session, timeout: float) -> Provider:
        """Fetch ``{url}/.well-known/openid-configuration`` and check it names ``url`` as issuer."""
        url = normalize_as_url(url)
        try:
            response = http.get(f"{url}/.well-known/openid-configuration", timeout=timeout)
        except requests.RequestException:
            raise ASError(f"Could not reach an Authorization Server at {url}.") from None
        if response.status_code != 200:
            raise ASError(f"{url} does not look like an Authorization Server "
                          f"(discovery answered HTTP {response.status_code}).")
        metadata = _json(response, "discovery document")
        # OpenID Connect Discovery 1.0 §4.3: the issuer MUST be identical to the URL we asked.
        if metadata.get("issuer") != url:
            raise ASError(f"The discovery document at {url} names another issuer "
                          f"({metadata.get('issuer')!r}); refusing to use it.")
        return cls(url, metadata)


def normalize_as_url(url: str) -> str:
    """The issuer URL a person typed, without trailing slash; only http(s) URLs are accepted."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ASError("Type your Authorization Server's address, like https://as.example.com.")
    return url


def register(provider: Provider, settings: GrapherSettings, key: ClientKey,
             http: requests.Session, fapi2: bool = False) -> str:
    """Dynamic client registration (RFC 7591 §3.1): our redirect URI and public key; the client_id.

    In FAPI 2.0 mode the client also asks to be held to it: PAR only (RFC 9126 §6), DPoP-bound
    tokens only (RFC 9449 §5.2), and an ID token signed with a FAPI 2.0 algorithm.
    """
    if not settings.initial_access_token:
        raise ASError("The Grapher is not registered at this Authorization Server. Its operator sets "
                      "GRAPHER_INITIAL_ACCESS_TOKEN (to register) or GRAPHER_CLIENT_ID.")
    algs = provider.metadata.get("token_endpoint_auth_signing_alg_values_supported")
    if algs and key.alg not in algs:
        raise ASError(f"Your Authorization Server does not accept {key.alg} client assertions.")
    metadata = {
        "client_name": CLIENT_NAME,
        "client_uri": settings.base_url,
        "redirect_uris": [settings.redirect_uri, settings.base_url + PAY_CALLBACK],
        # client credentials with "events": our own event stream at the AS (events.py)
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types": ["code"],
        "scope": f"{SCOPE} {PAY_SCOPE} events",
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": key.alg,
        "jwks": key.public_jwks(),
    }
    if fapi2:
        id_token_algs = provider.metadata.get("id_token_signing_alg_values_supported", [])
        metadata.update(require_pushed_authorization_requests=True, dpop_bound_access_tokens=True,
                        id_token_signed_response_alg=next(
                            (alg for alg in FAPI2_ALGS if alg in id_token_algs), FAPI2_ALGS[0]))
    try:
        response = http.post(
            provider.endpoint("registration_endpoint"), json=metadata, timeout=settings.http_timeout,
            headers={"Authorization": f"Bearer {settings.initial_access_token}"},
        )
    except requests.RequestException:
        raise ASError("Could not reach the registration endpoint.") from None
    body = _json(response, "registration endpoint")
    if response.status_code != 201 or not isinstance(body.get("client_id"), str):
        raise _oauth_failure("registration endpoint", body, response.status_code)
    return body["client_id"]


class ASClient:
    """One registered client at one AS: PAR, code exchange, ID token, introspection, refresh.

    With a ``dpop`` key it is in FAPI 2.0 mode: PAR is required, and the pushed request, every
    token request and userinfo carry DPoP proofs of that key, so the tokens are bound to it.
    """

    def __init__(self, provider: Provider, client_id: str, key: ClientKey, settings: GrapherSettings,
                 http: requests.Session, dpop: DPoPKey | None = None) -> None:
        self.provider = provider
        self.client_id = client_id
        self.key = key
        self.settings = settings
        self.http = http
        self.dpop = dpop

    @property
    def fapi2(self) -> bool:
        return self.dpop is not None

    def session(self) -> OAuth2Session:
        """An Authlib session that authenticates with ``private_key_jwt`` (RFC 7523 §2.2)."""
        session = OAuth2Session(
            self.client_id, self.key.key,
            token_endpoint_auth_method="private_key_jwt",
            revocation_endpoint_auth_method="private_key_jwt",
            scope=SCOPE, redirect_uri=self.settings.redirect_uri, code_challenge_method="S256",
            default_timeout=self.settings.http_timeout,
        )
        # aud = the issuer identifier, as FAPI 2.0 asks; one assertion shape for every endpoint.
        session.register_client_auth_method(
            PrivateKeyJWT(self.provider.issuer, alg=self.key.alg, headers={"kid": self.key.kid}))
        return session

    def _client_auth(self, session: OAuth2Session) -> Any:
        """``private_key_jwt``, with a DPoP proof after it in FAPI 2.0 mode."""
        client_auth = session.client_auth("private_key_jwt")
        return DPoPAuth(self.dpop, client_auth=client_auth) if self.dpop else client_auth

    def _bound(self, token: dict[str, Any]) -> dict[str, Any]:
        """FAPI 2.0 Security Profile §5.3.2.1: sender-constrained tokens; a bearer answer is refused."""
        if self.dpop and str(token.get("token_type", "")).lower() != "dpop":
            raise ASError("Your Authorization Server issued a bearer token where FAPI 2.0 requires "
                          "a DPoP-bound one.")
        return token

    def authorization_url(self, state: str, nonce: str, code_verifier: str, **overrides: str) -> str:
        """Where to send the browser: pushed (RFC 9126) when the AS offers PAR. ``overrides``
        replace or add request parameters (a payment's scope, details and callback)."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(code_verifier),  # RFC 7636 §4.2
            "code_challenge_method": "S256",
            **overrides,
        }
        authorize = self.provider.endpoint("authorization_endpoint")
        par = self.provider.metadata.get("pushed_authorization_request_endpoint")
        if not par and self.fapi2:  # FAPI 2.0 Security Profile §5.3.2.2: PAR only
            raise ASError("Your Authorization Server has no pushed authorization request endpoint, "
                          "which FAPI 2.0 requires.")
        if not par:
            return f"{authorize}?{urlencode(params)}"
        with self.session() as session:
            try:
                # In FAPI 2.0 mode the proof here binds the code to our DPoP key (RFC 9449 §10).
                response = session.post(par, data=params, withhold_token=True,
                                        auth=self._client_auth(session))
            except requests.RequestException:
                raise ASError("Could not reach the pushed authorization request endpoint.") from None
        body = _json(response, "pushed authorization request endpoint")
        # RFC 9126 §2.2: 201 Created with request_uri and expires_in
        if response.status_code != 201 or not isinstance(body.get("request_uri"), str):
            raise _oauth_failure("pushed authorization request endpoint", body, response.status_code)
        return f"{authorize}?{urlencode({'client_id': self.client_id, 'request_uri': body['request_uri']})}"

    def exchange_code(self, code: str, code_verifier: str, redirect_uri: str | None = None) -> dict[str, Any]:
        """The token request (RFC 6749 §4.1.3) with the PKCE verifier; ``expires_at`` is added.
        ``redirect_uri``: the one the authorization request named, when not the usual one."""
        with self.session() as session:
            session.redirect_uri = redirect_uri or session.redirect_uri
            try:
                token = session.fetch_token(self.provider.endpoint("token_endpoint"),
                                            grant_type="authorization_code", code=code,
                                            code_verifier=code_verifier, auth=self._client_auth(session))
            except OAuthError as exc:
                raise ASError(f"The token endpoint refused the code: {exc.description or exc.error}") \
                    from None
            except (requests.RequestException, ValueError):
                raise ASError("The token endpoint did not answer usefully.") from None
        return self._bound(dict(token))

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new access token (RFC 6749 §6); :class:`AccessEnded` when the grant is gone."""
        with self.session() as session:
            try:
                token = session.refresh_token(self.provider.endpoint("token_endpoint"),
                                              refresh_token=refresh_token, auth=self._client_auth(session))
            except OAuthError as exc:
                if exc.error == "invalid_grant":
                    raise AccessEnded(exc.description or "The grant is no longer valid.") from None
                raise ASError(f"The token endpoint refused to refresh: {exc.description or exc.error}") \
                    from None
            except (requests.RequestException, ValueError):
                raise ASError("The token endpoint did not answer usefully.") from None
        return self._bound(dict(token))

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """OpenID Connect Core 1.0 §3.1.3.7: signature by the AS's keys, iss, aud, azp, exp, nonce."""
        try:
            response = self.http.get(self.provider.endpoint("jwks_uri"), timeout=self.settings.http_timeout)
            keys = KeySet.import_key_set(_json(response, "JWKS endpoint"))  # type: ignore[arg-type]
        except (requests.RequestException, JoseError, ValueError):
            raise ASError("Could not load your Authorization Server's signing keys.") from None
        algs = [alg for alg in self.provider.metadata.get("id_token_signing_alg_values_supported", ["RS256"])
                if alg != "none" and (alg in FAPI2_ALGS or not self.fapi2)]
        try:
            claims = jwt.decode(id_token, keys, algorithms=algs).claims
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": self.provider.issuer},
                aud={"essential": True, "value": self.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except (JoseError, ValueError) as exc:
            raise ASError(f"The ID token did not verify ({exc}).") from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise ASError("The ID token was issued for another client (azp).")
        return claims

    def token_auth(self, access_token: str) -> requests.auth.AuthBase:
        """Our access token at the AS's resource endpoints: with a proof when DPoP-bound (RFC 9449
        §7.1), else as a bearer token (RFC 6750 §2.1)."""
        return DPoPAuth(self.dpop, access_token=access_token) if self.dpop else _Bearer(access_token)

    def userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """OpenID Connect Core 1.0 §5.3 with our DPoP-bound token (RFC 9449 §7.1); its ``sub``
        must be the ID token's (Core §5.3.2)."""
        if self.dpop is None:
            raise ASError("The Grapher calls userinfo only with a DPoP-bound token.")
        try:
            response = self.http.get(self.provider.endpoint("userinfo_endpoint"),
                                     auth=self.token_auth(access_token),
                                     timeout=self.settings.http_timeout)
        except requests.RequestException:
            raise ASError("Could not reach the userinfo endpoint.") from None
        if response.status_code != 200:
            raise ASError(f"The userinfo endpoint refused our DPoP-bound token "
                          f"({response.headers.get('WWW-Authenticate') or response.status_code}).")
        claims = _json(response, "userinfo endpoint")
        if claims.get("sub") != subject:
            raise ASError("The userinfo endpoint answered about someone else than the ID token.")
        return claims

    def introspect(self, endpoint: str, access_token: str) -> dict[str, Any]:
        """RFC 7662 §2.1, client-authenticated; the AS adds ``institutions`` to the answer."""
        with self.session() as session:
            try:
                response = session.introspect_token(endpoint, token=access_token,
                                                    token_type_hint="access_token")
            except requests.RequestException:
                raise ASError("Could not reach the introspection endpoint.") from None
        body = _json(response, "introspection endpoint")
        if response.status_code != 200:
            raise _oauth_failure("introspection endpoint", body, response.status_code)
        return body

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009: best effort, used when the person disconnects the Grapher."""
        endpoint = self.provider.metadata.get("revocation_endpoint")
        if not endpoint:
            return
        # On failure the token still expires, and the person sees the grant on their dashboard.
        with self.session() as session, contextlib.suppress(requests.RequestException):
            session.revoke_token(endpoint, token=token, token_type_hint=hint)

    def trusted_introspection_endpoint(self, token_response: Mapping[str, Any]) -> str:
        """The story's "location of the service", from the token response.

        We send it a client assertion and the access token, so it must belong to the AS: the
        discovery document's introspection endpoint or a URL on the issuer's origin.
        """
        published = self.provider.metadata.get("introspection_endpoint")
        endpoint = token_response.get("introspection_endpoint") or published
        if not isinstance(endpoint, str) or not endpoint:
            raise ASError("Your Authorization Server did not say where to introspect the token.")
        parts = urlsplit(endpoint)
        if endpoint != published and f"{parts.scheme}://{parts.netloc}" != self.provider.origin:
            raise ASError("The introspection endpoint in the token response is not on your "
                          "Authorization Server; refusing to send it the token.")
        return endpoint


class ClientDirectory:
    """Our client at each AS we have met: the configured one, or one registered on first use."""

    def __init__(self, settings: GrapherSettings, key: ClientKey) -> None:
        self.settings = settings
        self.key = key
        self.dpop = DPoPKey()
        self.http = requests.Session()
        self._clients: dict[str, ASClient] = {}
        self._lock = Lock()

    def discover(self, as_url: str) -> Provider:
        return Provider.discover(as_url, self.http, self.settings.http_timeout)

    def client_for(self, provider: Provider) -> ASClient:
        """Our client at ``provider``, registering one the first time (configured ones are used as is)."""
        with self._lock:
            client = self._clients.get(provider.issuer)
            if client is None:
                fapi2 = self.fapi2_at(provider)
                if fapi2 and self.key.alg not in FAPI2_ALGS:
                    raise ASError(f"FAPI 2.0 needs a {' or '.join(FAPI2_ALGS)} client key, "
                                  f"not {self.key.alg}.")
                if self.settings.client_id and provider.issuer == self.settings.as_url:
                    client_id = self.settings.client_id
                else:
                    client_id = register(provider, self.settings, self.key, self.http, fapi2)
                client = ASClient(provider, client_id, self.key, self.settings, self.http,
                                  self.dpop if fapi2 else None)
                self._clients[provider.issuer] = client
            return client

    def fapi2_at(self, provider: Provider) -> bool:
        """FAPI 2.0 mode: asked for (``GRAPHER_FAPI2``), or an AS that requires PAR (RFC 9126 §5),
        which is how a FAPI 2.0 AS announces itself in discovery."""
        return self.settings.fapi2 or provider.metadata.get("require_pushed_authorization_requests") is True

    def forget(self, client: ASClient) -> bool:
        """Drop a self-registered client the AS no longer knows; False for the configured one."""
        with self._lock:
            if client.client_id == self.settings.client_id:
                return False
            if self._clients.get(client.provider.issuer) is client:
                del self._clients[client.provider.issuer]
            return True


def token_expired(token: Mapping[str, Any], leeway: int = 15) -> bool:
    expires_at = token.get("expires_at")
    return isinstance(expires_at, int | float) and expires_at - leeway <= time.time()


class _Bearer(requests.auth.AuthBase):
    """RFC 6750 §2.1: ``Authorization: Bearer <token>``."""

    def __init__(self, access_token: str) -> None:
        self.access_token = access_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        return request
