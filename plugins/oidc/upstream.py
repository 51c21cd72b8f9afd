"""One upstream authorization server, spoken to with Authlib's requests client.

Discovery (RFC 8414, OpenID Connect Discovery), client authentication (RFC 6749 §2.3.1
``client_secret_basic``/``client_secret_post``, RFC 7523 ``private_key_jwt``), pushed
authorization requests (RFC 9126), PKCE (RFC 7636), the code exchange, refresh, revocation
(RFC 7009), userinfo and ID token verification (OpenID Connect Core §3.1.3.7).

Failures become the contract's typed errors: an unreachable or failing upstream is
:class:`UpstreamUnavailable`; what the upstream refuses is left to the caller to classify
through :class:`OAuthRefusal`.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator.upstream.contract import LinkInvalid, PluginCache, UpstreamUnavailable
from aggregator.upstream.http import UpstreamHTTP
from aggregator.upstream.plugin_keys import SIGNING_ALGS, SigningKey

METADATA_TTL = 3600
#: how far clocks may disagree when checking an ID token, in seconds
LEEWAY = 60
#: OAuth error codes that mean "try again later", not "no" (RFC 6749 §4.1.2.1)
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


class OAuthRefusal(Exception):
    """The upstream answered an OAuth error (``error``, ``description``) to a request."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description or ''}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ClientCredentials:
    """How this plugin authenticates at the upstream's endpoints."""

    client_id: str
    auth_method: str
    client_secret: str | None = None
    signing_key: SigningKey | None = None


class _PrivateKeyJWT(PrivateKeyJWT):
    """RFC 7523 §2.2 client assertion: short-lived, fresh ``jti``, ``kid`` in the header.

    ``aud`` is the token endpoint URL, the value RFC 7523 §3 names and every server accepts
    (RFC 9126 §2 requires PAR endpoints to accept it as well).
    """

    def __init__(self, token_endpoint: str, key: SigningKey) -> None:
        super().__init__(token_endpoint=token_endpoint, alg=key.alg)
        self.key = key

    def sign(self, auth: Any, token_endpoint: str) -> str:
        header = {"kid": self.key.kid} if self.key.kid else {}
        return private_key_jwt_sign(
            self.key.key, client_id=auth.client_id, token_endpoint=token_endpoint,
            alg=self.key.alg, header=header, expires_in=60,
        )


def _client_secret_basic(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding (Authlib's
    own method skips that step, which breaks secrets with reserved characters)."""
    pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return uri, headers, body


class Upstream:
    """One issuer: its metadata, and the requests this plugin makes to it."""

    def __init__(
        self,
        issuer: str,
        credentials: ClientCredentials,
        cache: PluginCache,
        http: UpstreamHTTP,
    ) -> None:
        self.issuer = issuer
        self.credentials = credentials
        self.cache = cache
        self.http = http
        self.timeout = http.timeout

    # -- discovery ----------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The upstream's metadata, cached for an hour."""
        key = f"metadata:{self.issuer}"
        cached = self.cache.get(key)
        if cached is None:
            cached = self._discover()
            self.cache.set(key, cached, ttl=METADATA_TTL)
        return cached

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
            response = self.http.get(url, headers={"Accept": "application/json"})
            if response.status_code == 404:
                continue
            document = _json_object(response)
            if response.status_code != 200 or document is None:
                raise UpstreamUnavailable("The institution's server metadata is unavailable.")
            # RFC 8414 §3.3 / OIDC Discovery §4.3: the issuer MUST be the one asked for, or
            # an attacker's metadata could stand in for the real server's.
            if document.get("issuer") != self.issuer:
                raise UpstreamUnavailable("The institution's metadata names another issuer.")
            for endpoint in ("authorization_endpoint", "token_endpoint"):
                if not isinstance(document.get(endpoint), str):
                    raise UpstreamUnavailable(f"The institution's metadata has no {endpoint}.")
            return document
        raise UpstreamUnavailable("The institution publishes no server metadata.")

    # -- the authorization request ------------------------------------------------------------

    def authorization_url(self, params: dict[str, str]) -> str:
        """The URL to send the browser to, pushing ``params`` first when the upstream has a
        PAR endpoint (RFC 9126 §4: then only ``client_id`` and ``request_uri`` travel)."""
        metadata = self.metadata()
        endpoint = metadata["authorization_endpoint"]
        params = {"client_id": self.credentials.client_id, **params}
        par_endpoint = metadata.get("pushed_authorization_request_endpoint")
        if par_endpoint:
            request_uri = self._push(par_endpoint, params)
            params = {"client_id": self.credentials.client_id, "request_uri": request_uri}
        separator = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{urlencode(params)}"

    def _push(self, par_endpoint: str, params: dict[str, str]) -> str:
        with self._session() as session, self._reaching():
            response = session.post(
                par_endpoint, data=params, withhold_token=True, timeout=self.timeout,
                auth=session.client_auth(self.credentials.auth_method),
            )
        body = _json_object(response)
        if response.status_code in (200, 201) and body and isinstance(body.get("request_uri"), str):
            return body["request_uri"]
        raise _refusal(response, body)

    def check_issuer_parameter(self, params: dict[str, str]) -> None:
        """RFC 9207 §2.4: a callback's ``iss`` must name this issuer; it must be there when the
        upstream says it always sends it. Stops mix-up attacks between institutions."""
        iss = params.get("iss")
        if iss is None:
            if self.metadata().get("authorization_response_iss_parameter_supported"):
                raise LinkInvalid("The institution's response does not name its issuer.")
            return
        if not hmac.compare_digest(iss.encode(), self.issuer.encode()):
            raise LinkInvalid("The response comes from another institution's server.")

    # -- the token endpoint -------------------------------------------------------------------

    def exchange_code(self, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5)."""
        with self._session(redirect_uri=redirect_uri) as session, self._refusals():
            return dict(session.fetch_token(
                self.metadata()["token_endpoint"], grant_type="authorization_code", code=code,
                code_verifier=code_verifier, timeout=self.timeout,
            ))

    def refresh(self, refresh_token: str, scope: str | None) -> dict[str, Any]:
        """RFC 6749 §6; ``scope`` narrows the new access token."""
        with self._session() as session, self._refusals():
            return dict(session.refresh_token(
                self.metadata()["token_endpoint"], refresh_token=refresh_token,
                timeout=self.timeout, **({"scope": scope} if scope else {}),
            ))

    def revoke(self, token: str, token_type_hint: str) -> bool:
        """RFC 7009; False when the upstream has no revocation endpoint."""
        endpoint = self.metadata().get("revocation_endpoint")
        if not endpoint:
            return False
        with self._session() as session, self._reaching():
            response = session.revoke_token(endpoint, token=token,
                                            token_type_hint=token_type_hint,
                                            timeout=self.timeout)
        # RFC 7009 §2.2: an unknown or already revoked token is a 200 as well.
        if response.status_code != 200:
            raise _refusal(response, _json_object(response))
        return True

    # -- who is this? -------------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo endpoint's claims; empty when the upstream has none."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            return {}
        response = self.http.get(endpoint, headers={"Authorization": f"Bearer {access_token}",
                                                     "Accept": "application/json"})
        claims = _json_object(response)
        if response.status_code != 200 or claims is None:
            raise UpstreamUnavailable("The institution's userinfo endpoint failed.")
        return claims

    def verify_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7: signature, iss, aud/azp, exp, iat and nonce."""
        # Asymmetric algorithms only: never "none", never a MAC keyed with our own secret.
        allowed = [alg for alg in self.metadata().get("id_token_signing_alg_values_supported",
                                                       ["RS256"]) if alg in SIGNING_ALGS]
        if not allowed:
            raise LinkInvalid("The institution signs ID tokens with no algorithm we accept.")
        try:
            header = json.loads(_b64url(id_token.split(".")[0]))
            kid = header.get("kid")
            keys = self._keys(refresh=False)
            if kid and all(key.kid != kid for key in keys):
                keys = self._keys(refresh=True)  # the upstream rotated its keys (Core §10.1.1)
            claims = jwt.decode(id_token, keys, algorithms=allowed).claims
        except (JoseError, ValueError, TypeError, AttributeError, IndexError):
            raise LinkInvalid("The institution's ID token does not verify.") from None
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        now = time.time()
        problems = {
            "another issuer": claims.get("iss") != self.issuer,
            "another client": self.credentials.client_id not in audiences
            or (len(audiences) > 1 and claims.get("azp") != self.credentials.client_id),
            "an expiry in the past": not _number(claims.get("exp"))
            or claims["exp"] <= now - LEEWAY,
            "no valid issue time": not _number(claims.get("iat")) or claims["iat"] > now + LEEWAY,
            "no subject": not isinstance(claims.get("sub"), str) or not claims["sub"],
            "another nonce": nonce is not None
            and not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()),
        }
        for problem, found in problems.items():
            if found:
                raise LinkInvalid(f"The institution's ID token has {problem}.")
        return claims

    def _keys(self, *, refresh: bool) -> KeySet:
        key = f"jwks:{self.issuer}"
        document = None if refresh else self.cache.get(key)
        if document is None:
            uri = self.metadata().get("jwks_uri")
            if not uri:
                raise LinkInvalid("The institution sent an ID token but publishes no keys.")
            response = self.http.get(uri)
            document = _json_object(response)
            if response.status_code != 200 or not document or "keys" not in document:
                raise UpstreamUnavailable("The institution's signing keys are unavailable.")
            self.cache.set(key, document, ttl=METADATA_TTL)
        return KeySet.import_key_set(document)  # type: ignore[arg-type]

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _session(self, **kwargs: Any) -> Iterator[OAuth2Session]:
        credentials = self.credentials
        secret: Any = credentials.client_secret
        if credentials.auth_method == "private_key_jwt":
            secret = credentials.signing_key.key  # type: ignore[union-attr]
        session = OAuth2Session(
            credentials.client_id, secret,
            token_endpoint_auth_method=credentials.auth_method,
            revocation_endpoint_auth_method=credentials.auth_method,
            **kwargs,
        )
        if credentials.auth_method == "private_key_jwt":
            session.register_client_auth_method(
                _PrivateKeyJWT(self.metadata()["token_endpoint"], credentials.signing_key)
            )
        session.register_client_auth_method(("client_secret_basic", _client_secret_basic))
        with session:
            yield session

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Network failures, timeouts and 5xx answers mean the upstream is unavailable."""
        try:
            yield
        except requests.RequestException as exc:
            raise UpstreamUnavailable("The institution cannot be reached right now.") from exc

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        """Token endpoint answers: OAuth errors become :class:`OAuthRefusal` (transient ones
        :class:`UpstreamUnavailable`), a body that is no token response an outage."""
        with self._reaching():
            try:
                yield
            except OAuthError as exc:
                if exc.error in TRANSIENT_ERRORS:
                    raise UpstreamUnavailable(
                        "The institution is temporarily unavailable."
                    ) from exc
                raise OAuthRefusal(exc.error, exc.description) from exc
            except ValueError as exc:  # not JSON, or not a JSON object
                raise UpstreamUnavailable("The institution answered nonsense.") from exc


def new_pkce_verifier() -> str:
    """A PKCE code verifier (RFC 7636 §4.1: 43-128 unreserved characters; here 48)."""
    return generate_token(48)


def _refusal(response: requests.Response, body: dict[str, Any] | None) -> Exception:
    if response.status_code >= 500 or not body or not isinstance(body.get("error"), str):
        return UpstreamUnavailable("The institution is unavailable right now.")
    if body["error"] in TRANSIENT_ERRORS:
        return UpstreamUnavailable("The institution is temporarily unavailable.")
    return OAuthRefusal(body["error"], body.get("error_description"))


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
