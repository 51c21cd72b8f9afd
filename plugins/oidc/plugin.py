"""The generic OpenID Connect / OAuth 2.0 upstream plugin.

Any upstream that publishes RFC 8414 or OpenID Connect Discovery metadata: the person is sent to
the upstream's authorization endpoint (through PAR when it offers one) with PKCE S256, the code
is exchanged with the configured client authentication, the refresh token is kept (encrypted,
by the core) and used for fresh, least-privilege access tokens; unlinking revokes it.

Institutions come from configuration (``OIDC_INSTITUTIONS``), each with its own issuer if need
be, and the API endpoint handed to apps is a template filled from the upstream's claims.
Subclasses (the sandbox plugin) change where institutions come from by overriding
:meth:`OIDCPlugin.institution_entries`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

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
from aggregator.upstream.plugin_keys import signing_key
from plugins.oidc.config import PLACEHOLDER, OIDCConfig


class OIDCPlugin(UpstreamPlugin):
    """Connects institutions behind any standards-compliant OAuth 2.0 / OIDC server."""

    name = "oidc"
    display_name = "OpenID Connect"
    config_schema = OIDCConfig

    def __init__(self, config: Mapping[str, Any], context: PluginContext) -> None:
        super().__init__(config, context)
        jwks = config.get("private_jwks")
        self.credentials = ClientCredentials(
            client_id=config["client_id"],
            auth_method=config.get("auth_method", "client_secret_basic"),
            client_secret=config.get("client_secret"),
            signing_key=signing_key(jwks) if jwks else None,
        )
        self.scope_map: dict[str, str] = dict(config["scopes"])
        self.extra_scopes: list[str] = config.get("extra_scopes", "").split()

    # -- where institutions come from (the one thing subclasses change) -----------------------

    def institution_entries(self) -> list[dict[str, Any]]:
        """Each institution as ``{"id", "name", "issuer", "endpoint", ...}``."""
        return list(self.config["institutions"])

    # -- the contract -------------------------------------------------------------------------

    def institutions(self) -> list[Institution]:
        return [
            Institution(e["id"], e["name"], e.get("icon_url"), e.get("description"))
            for e in self.institution_entries()
        ]

    def begin_link(
        self, person: Person, institution_id: str, *, state: str,
        reconnect: Registration | None = None,
    ) -> LinkStart:
        entry = self._entry(institution_id)
        upstream = self.upstream(entry["issuer"])
        verifier, challenge = pkce()
        scope = " ".join(dict.fromkeys([*self._upstream_scopes(), *self.extra_scopes]))
        params = {
            "response_type": "code",
            "redirect_uri": self.context.callback_url,
            "scope": scope,
            "state": state,
            **challenge,
        }
        nonce = None
        if "openid" in self.extra_scopes:
            nonce = secrets.token_urlsafe(24)  # binds the ID token to this link (Core §3.1.2.1)
            params["nonce"] = nonce
        try:
            url = upstream.authorization_url(params)
        except OAuthRefusal as refusal:
            raise UpstreamError(
                f"The institution refused the authorization request ({refusal.error})."
            ) from None
        remember = {"institution": entry["id"], "issuer": entry["issuer"],
                    "code_verifier": verifier, "nonce": nonce}
        return LinkStart(url, remember)

    def complete_link(
        self, person: Person, params: Mapping[str, str], remember: Mapping[str, Any], *,
        reconnect: Registration | None = None,
    ) -> list[LinkedInstitution]:
        entry = self._entry(remember["institution"])
        upstream = self.upstream(remember["issuer"])
        code = upstream.authorization_code(params)
        try:
            token = upstream.exchange_code(code, self.context.callback_url,
                                           remember["code_verifier"])
        except OAuthRefusal as refusal:
            raise LinkInvalid(
                f"The institution refused the authorization code ({refusal.error})."
            ) from None
        claims = self._claims(upstream, token, remember.get("nonce"))
        external_id = claims.get("sub")
        if not isinstance(external_id, str) or not external_id:
            raise LinkInvalid("The institution did not say which customer signed in.")
        if reconnect is not None and reconnect.external_id != external_id:
            raise LinkInvalid(
                "You signed in as a different customer than the one this connection is for."
            )
        refresh_token = token.get("refresh_token")
        return [LinkedInstitution(
            institution=self._institution(entry),
            external_id=external_id,
            endpoint=_fill(entry["endpoint"], claims),
            secrets={"refresh_token": refresh_token} if refresh_token else {},
            metadata={"issuer": upstream.issuer, "scope": token.get("scope") or ""},
            token=upstream_token(token),
        )]

    def access_token(self, registration: Registration, scopes: frozenset[str]) -> TokenResult:
        refresh_token = registration.secrets.get("refresh_token")
        if not refresh_token:
            raise ReauthRequired("This connection cannot be renewed; reconnect it.")
        upstream = self.upstream(registration.metadata["issuer"])
        scope = self._narrowed_scope(registration, scopes)
        try:
            token = upstream.refresh(refresh_token, scope)
        except OAuthRefusal as refusal:
            if refusal.error == "invalid_grant":
                raise ReauthRequired(
                    "The institution no longer accepts this connection; reconnect it."
                ) from None
            raise UpstreamError(
                f"The institution refused a new access token ({refusal.error})."
            ) from None
        rotated = token.get("refresh_token")
        new_secrets = (
            {**registration.secrets, "refresh_token": rotated}
            if rotated and rotated != refresh_token else None
        )
        return TokenResult(upstream_token(token), secrets=new_secrets)

    def unlink(self, registration: Registration) -> None:
        refresh_token = registration.secrets.get("refresh_token")
        if not refresh_token:
            return
        upstream = self.upstream(registration.metadata["issuer"])
        try:
            # RFC 7009 §2.1: revoking the refresh token ends the access tokens of the grant too.
            upstream.revoke(refresh_token, "refresh_token")
        except OAuthRefusal as refusal:
            raise UpstreamError(
                f"The institution refused to revoke the connection ({refusal.error})."
            ) from None

    # -- helpers ------------------------------------------------------------------------------

    def upstream(self, issuer: str) -> OIDCClient:
        """The upstream server at ``issuer`` (one of the configured institutions' issuers)."""
        if issuer not in {entry["issuer"] for entry in self.institution_entries()}:
            # ``remember`` and registration metadata are ours, but never talk to a server
            # the configuration does not name.
            raise LinkInvalid("This connection belongs to an institution that is not offered.")
        return OIDCClient(issuer, self.credentials, self.context.http, self.context.cache)

    def _entry(self, institution_id: str) -> dict[str, Any]:
        for entry in self.institution_entries():
            if entry["id"] == institution_id:
                return entry
        raise InvalidLinkOptions("That institution is not offered here.")

    @staticmethod
    def _institution(entry: Mapping[str, Any]) -> Institution:
        return Institution(entry["id"], entry["name"], entry.get("icon_url"),
                           entry.get("description"))

    def _upstream_scopes(self, data_scopes: frozenset[str] | None = None) -> list[str]:
        """The upstream scopes for our data scopes (all of them when None), in a stable order."""
        wanted = sorted(data_scopes) if data_scopes is not None else sorted(self.scope_map)
        scopes: list[str] = []
        for scope in wanted:
            for upstream_scope in self.scope_map.get(scope, "").split():
                if upstream_scope not in scopes:
                    scopes.append(upstream_scope)
        return scopes

    def _narrowed_scope(self, registration: Registration, scopes: frozenset[str]) -> str | None:
        """Least privilege: only the upstream scopes the asked data scopes need, and never
        more than the grant holds (RFC 6749 §6 forbids widening)."""
        granted = set(registration.metadata.get("scope", "").split())
        wanted = self._upstream_scopes(scopes)
        if granted:
            wanted = [scope for scope in wanted if scope in granted]
        if not wanted:
            raise UpstreamError("The institution did not grant access to this data.")
        return " ".join(wanted)

    @staticmethod
    def _claims(upstream: OIDCClient, token: Mapping[str, Any], nonce: str | None) -> dict[str, Any]:
        """What the upstream says about the customer: token response members, then the ID
        token's verified claims, then userinfo (whose ``sub`` must match, Core §5.3.2)."""
        claims = {k: v for k, v in token.items() if k not in ("access_token", "refresh_token",
                                                               "id_token")}
        if isinstance(token.get("id_token"), str):
            claims.update(upstream.id_tokens().verify(token["id_token"], nonce=nonce))
        userinfo = upstream.userinfo(token["access_token"])
        if "sub" in claims and "sub" in userinfo and userinfo["sub"] != claims["sub"]:
            raise LinkInvalid("The institution's userinfo is about another customer.")
        return {**claims, **userinfo}


def _fill(template: str, claims: Mapping[str, Any]) -> str:
    """``template`` with every ``{claim}`` replaced by that claim's value."""

    def value(match: Any) -> str:
        found = claims.get(match.group(1))
        if not isinstance(found, str | int) or isinstance(found, bool) or found == "":
            raise LinkInvalid(f"The institution did not provide '{match.group(1)}'.")
        return str(found)

    return PLACEHOLDER.sub(value, template)
