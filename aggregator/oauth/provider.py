"""The provider's handle on its settings, endpoint URLs and repositories.

Endpoints reach everything through :func:`provider`, built once per application. The
repositories below the ``Store``'s own are per record kind, constructed over the same Redis
connection pool and key ring.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import current_app

from aggregator.services import Services, services
from aggregator.store.assertions import ClientAssertionRepository
from aggregator.store.authorizations import PendingAuthorizationRepository
from aggregator.store.clients import ClientRepository
from aggregator.store.codes import AuthorizationCodeRepository
from aggregator.store.grants import GrantRepository
from aggregator.store.par import PushedRequestRepository
from aggregator.store.tokens import TokenRepository


@dataclass(frozen=True)
class Endpoints:
    """Where each endpoint lives (RFC 8414 metadata names)."""

    issuer: str

    @property
    def authorization(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token(self) -> str:
        return f"{self.issuer}/token"

    @property
    def par(self) -> str:
        return f"{self.issuer}/par"

    @property
    def introspection(self) -> str:
        return f"{self.issuer}/introspect"

    @property
    def revocation(self) -> str:
        return f"{self.issuer}/revoke"

    @property
    def registration(self) -> str:
        return f"{self.issuer}/register"

    def client_configuration(self, client_id: str) -> str:
        """RFC 7592 ``registration_client_uri``."""
        return f"{self.issuer}/register/{client_id}"

    @property
    def jwks(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def userinfo(self) -> str:
        return f"{self.issuer}/userinfo"

    @property
    def grant_management(self) -> str:
        return f"{self.issuer}/grants"


class Provider:
    """Settings, URLs and repositories of the OAuth/OIDC provider."""

    def __init__(self, svc: Services) -> None:
        self.services = svc
        self.settings = svc.settings
        self.signing_keys = svc.signing_keys
        self.endpoints = Endpoints(svc.settings.issuer)
        self._redis = svc.store.redis
        self._keyring = svc.store.keyring

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def clients(self) -> ClientRepository:
        return self.services.store.clients

    @property
    def tokens(self) -> TokenRepository:
        return self.services.store.tokens

    @property
    def grants(self) -> GrantRepository:
        return self.services.store.grants

    @cached_property
    def codes(self) -> AuthorizationCodeRepository:
        return AuthorizationCodeRepository(self._redis, self._keyring)

    @cached_property
    def pushed_requests(self) -> PushedRequestRepository:
        return PushedRequestRepository(self._redis, self._keyring)

    @cached_property
    def pending(self) -> PendingAuthorizationRepository:
        return PendingAuthorizationRepository(self._redis, self._keyring)

    @cached_property
    def assertions(self) -> ClientAssertionRepository:
        return ClientAssertionRepository(self._redis, self._keyring)


def provider() -> Provider:
    """The current application's provider (built on first use)."""
    extensions = current_app.extensions
    if "oauth" not in extensions:
        extensions["oauth"] = Provider(services())
    return extensions["oauth"]
