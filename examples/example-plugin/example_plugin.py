"""An upstream plugin for one OAuth 2.0 bank, written against the public contract.

The protocol work (discovery, PKCE, PAR when offered, the code exchange, refresh, revocation,
userinfo) is the shared toolkit :class:`~aggregator.upstream.oidc_client.OIDCClient`, and every
request goes through ``context.http`` (timeouts, error mapping). What is left is the contract:
six short methods. For a bank with standard discovery, subclassing ``plugins.oidc`` is shorter
still (docs/plugins.md, "The easiest path").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields

from aggregator.upstream.client_auth import ClientCredentials
from aggregator.upstream.contract import (
    Institution,
    InvalidLinkOptions,
    LinkedInstitution,
    LinkInvalid,
    LinkStart,
    Person,
    PluginContext,
    ReauthRequired,
    Registration,
    TokenResult,
    UpstreamError,
    UpstreamPlugin,
)
from aggregator.upstream.oidc_client import OAuthRefusal, OIDCClient, pkce, upstream_token

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

    def __init__(self, config: Mapping[str, Any], context: PluginContext) -> None:
        super().__init__(config, context)
        credentials = ClientCredentials(config["client_id"], "client_secret_basic",
                                        config["client_secret"])
        self.bank = OIDCClient(config["issuer"].rstrip("/"), credentials, context.http,
                               context.cache)

    def institutions(self) -> list[Institution]:
        return [Institution(INSTITUTION_ID, self.config["institution_name"])]

    def begin_link(self, person: Person, institution_id: str, *, state: str,
                   reconnect: Registration | None = None) -> LinkStart:
        if institution_id != INSTITUTION_ID:
            raise InvalidLinkOptions("This plugin offers one institution only.")
        verifier, challenge = pkce()
        try:
            url = self.bank.authorization_url({
                "response_type": "code", "redirect_uri": self.context.callback_url,
                "scope": " ".join(SCOPES.values()), "state": state, **challenge,
            })
        except OAuthRefusal as refusal:
            raise UpstreamError(refusal.explain("start the link")) from None
        return LinkStart(url, {"code_verifier": verifier})

    def complete_link(self, person: Person, params: Mapping[str, str],
                      remember: Mapping[str, Any], *,
                      reconnect: Registration | None = None) -> list[LinkedInstitution]:
        code = self.bank.authorization_code(params)  # error responses, RFC 9207 ``iss``
        try:
            raw = self.bank.exchange_code(code, self.context.callback_url,
                                          remember["code_verifier"])
        except OAuthRefusal as refusal:
            raise LinkInvalid(refusal.explain("accept the authorization code")) from None
        me = self.bank.userinfo(raw["access_token"])
        if not isinstance(me.get("sub"), str) or not isinstance(me.get("endpoint"), str):
            raise LinkInvalid("The bank did not say which customer signed in.")
        return [LinkedInstitution(
            institution=self.institutions()[0], external_id=me["sub"], endpoint=me["endpoint"],
            secrets={"refresh_token": raw.get("refresh_token")}, token=upstream_token(raw),
        )]

    def access_token(self, registration: Registration, scopes: frozenset[str]) -> TokenResult:
        wanted = " ".join(sorted(SCOPES[s] for s in scopes if s in SCOPES))
        try:
            raw = self.bank.refresh(registration.secrets["refresh_token"], wanted)
        except OAuthRefusal:
            raise ReauthRequired("The bank no longer accepts this connection; reconnect it.") from None
        rotated = raw.get("refresh_token")
        return TokenResult(upstream_token(raw), secrets={"refresh_token": rotated} if rotated else None)

    def unlink(self, registration: Registration) -> None:
        refresh_token = registration.secrets.get("refresh_token")
        if not refresh_token:
            return
        try:
            # False when the bank has no revocation endpoint: nothing to revoke upstream, and the
            # core forgets the registration all the same.
            self.bank.revoke(refresh_token, "refresh_token")
        except OAuthRefusal as refusal:
            raise UpstreamError(refusal.explain("revoke access")) from None

