"""An upstream plugin for one OAuth 2.0 bank, written only against the public contract."""

from __future__ import annotations

import time
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from marshmallow import Schema, fields

from aggregator.upstream.contract import (
    Institution,
    InvalidLinkOptions,
    LinkDenied,
    LinkedInstitution,
    LinkInvalid,
    LinkStart,
    Person,
    ReauthRequired,
    Registration,
    TokenResult,
    UpstreamPlugin,
    UpstreamToken,
    UpstreamUnavailable,
)

INSTITUTION_ID = "main"
#: our data scopes -> the bank's scopes
SCOPES = {"accounts:read": "accounts", "balances:read": "balances",
          "transactions:read": "transactions"}


class ExampleConfig(Schema):
    issuer = fields.Url(required=True, require_tld=False)
    client_id = fields.String(required=True)
    client_secret = fields.String(required=True)
    institution_name = fields.String(load_default="Example Bank")


class ExamplePlugin(UpstreamPlugin):
    name = "example"
    display_name = "Example bank (out-of-tree plugin)"
    config_schema = ExampleConfig

    # -- helpers ------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        cached = self.context.cache.get("metadata")
        if cached is None:
            url = self.config["issuer"].rstrip("/") + "/.well-known/oauth-authorization-server"
            try:
                response = requests.get(url, timeout=self.context.http.timeout)
                response.raise_for_status()
            except requests.RequestException as exc:
                raise UpstreamUnavailable("The bank cannot be reached right now.") from exc
            cached = response.json()
            self.context.cache.set("metadata", cached, ttl=3600)
        return cached

    def _session(self, **kwargs: Any) -> OAuth2Session:
        return OAuth2Session(self.config["client_id"], self.config["client_secret"],
                             token_endpoint_auth_method="client_secret_basic",
                             redirect_uri=self.context.callback_url, **kwargs)

    def _token(self, raw: dict[str, Any]) -> UpstreamToken:
        return UpstreamToken(raw["access_token"], int(time.time()) + int(raw.get("expires_in", 300)),
                             raw.get("token_type", "Bearer").capitalize(), raw.get("scope"))

    # -- the contract -------------------------------------------------------------

    def institutions(self) -> list[Institution]:
        return [Institution(INSTITUTION_ID, self.config["institution_name"])]

    def begin_link(self, person: Person, institution_id: str, *, state: str,
                   reconnect: Registration | None = None) -> LinkStart:
        if institution_id != INSTITUTION_ID:
            raise InvalidLinkOptions("This plugin offers one institution only.")
        verifier = generate_token(48)
        client = self._session(scope=" ".join(SCOPES.values()), code_challenge_method="S256")
        url, _ = client.create_authorization_url(
            self._metadata()["authorization_endpoint"], state=state, code_verifier=verifier)
        return LinkStart(url, {"code_verifier": verifier})

    def complete_link(self, person: Person, params: dict[str, str], remember: dict[str, Any], *,
                      reconnect: Registration | None = None) -> list[LinkedInstitution]:
        if params.get("error"):
            raise LinkDenied(f"The bank said: {params.get('error_description') or params['error']}.")
        if not params.get("code"):
            raise LinkInvalid("The bank did not send an authorization code.")
        metadata = self._metadata()
        try:
            raw = self._session().fetch_token(metadata["token_endpoint"], code=params["code"],
                                              code_verifier=remember["code_verifier"],
                                              timeout=self.context.http.timeout)
        except OAuthError as exc:
            raise LinkInvalid(f"The bank refused the authorization code ({exc.error}).") from exc
        except requests.RequestException as exc:
            raise UpstreamUnavailable("The bank cannot be reached right now.") from exc
        token = self._token(raw)
        me = requests.get(self.config["issuer"].rstrip("/") + "/userinfo", timeout=10,
                          headers={"Authorization": f"Bearer {token.access_token}"}).json()
        return [LinkedInstitution(
            institution=self.institutions()[0], external_id=str(me["sub"]),
            endpoint=me["endpoint"], secrets={"refresh_token": raw["refresh_token"]}, token=token,
        )]

    def access_token(self, registration: Registration, scopes: frozenset[str]) -> TokenResult:
        wanted = " ".join(sorted(SCOPES[s] for s in scopes if s in SCOPES))
        try:
            raw = self._session().refresh_token(
                self._metadata()["token_endpoint"], registration.secrets["refresh_token"],
                scope=wanted, timeout=self.context.http.timeout)
        except OAuthError as exc:
            raise ReauthRequired("The bank no longer accepts this connection; reconnect it.") from exc
        except requests.RequestException as exc:
            raise UpstreamUnavailable("The bank cannot be reached right now.") from exc
        rotated = raw.get("refresh_token")
        secrets = {"refresh_token": rotated} if rotated else None
        return TokenResult(self._token(raw), secrets=secrets)

    def unlink(self, registration: Registration) -> None:
        try:
            self._session().revoke_token(self._metadata()["revocation_endpoint"],
                                         registration.secrets["refresh_token"],
                                         token_type_hint="refresh_token")
        except requests.RequestException as exc:
            raise UpstreamUnavailable("The bank cannot be reached to revoke access.") from exc
