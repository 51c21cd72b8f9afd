"""Apps for the introspection tests: registered clients, their tokens, and the introspect call."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from aggregator.oauth.clients import register_client
from aggregator.services import Services
from aggregator.store.clients import ClientRecord
from aggregator.store.grants import Grant
from aggregator.upstream.contract import DATA_SCOPES

DATA = "accounts:read balances:read transactions:read"


@dataclass(frozen=True)
class App:
    """A confidential client (``client_secret_basic``) and its secret."""

    record: ClientRecord
    secret: str

    @property
    def client_id(self) -> str:
        return self.record.client_id

    def introspect(self, issuer: str, token: str, *, accept: str | None = None,
                   **extra: str) -> requests.Response:
        headers = {"Accept": accept} if accept else {}
        return requests.post(f"{issuer}/introspect", data={"token": token, **extra},
                             auth=(self.client_id, self.secret), headers=headers, timeout=10)


def register_app(svc: Services, name: str, *, resource_server_for: tuple[str, ...] = ()) -> App:
    """An app registered as RFC 7591 registration does it (by an operator when it is a resource
    server for other apps, as `aggregator clients create --resource-server-for` does)."""
    issued = register_client(svc, {
        "client_name": name,
        "redirect_uris": ["https://app.example/callback"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": f"openid offline_access {DATA}",
        "resource_server_for": list(resource_server_for),
    }, operator=bool(resource_server_for))
    return App(issued.client, issued.client_secret or "")


def grant_to(svc: Services, app: App, person_id: str, registration_ids, *,
             scope: str = f"openid {DATA}") -> Grant:
    """The person's consent to ``app`` for ``registration_ids`` (as the consent page stores it)."""
    data = frozenset(scope.split()) & DATA_SCOPES
    return svc.store.grants.create(app.client_id, person_id, scope.split(),
                                   {rid: data for rid in registration_ids})


def access_token(svc: Services, app: App, grant: Grant | None, *, ttl: int = 600,
                 scope: str | None = None) -> str:
    """An access token as the token endpoint issues it (``grant`` None: client credentials)."""
    token, _ = svc.store.tokens.issue_access_token(
        client_id=app.client_id,
        person_id=grant.person_id if grant else None,
        grant_id=grant.id if grant else None,
        scope=scope or (grant.scope if grant else DATA),
        ttl=ttl,
        pairs=grant.pairs if grant else None,
    )
    return token


def granted(svc: Services, person_id: str, registration_ids, *, scope: str = f"openid {DATA}"
            ) -> tuple[App, str]:
    """The Grapher, consented to for ``registration_ids``, and an access token of its grant."""
    grapher = register_app(svc, "Grapher")
    return grapher, access_token(svc, grapher, grant_to(svc, grapher, person_id, registration_ids,
                                                        scope=scope))
