"""The services one AS process holds, built once by ``create_app`` (Warehouse-style).

Everything reaches them one way: :func:`services` inside a request or an app context, or the
``Services`` that ``create_app`` passes to what it builds. Tests build an app with their own
settings and plugins rather than swapping internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from flask import current_app

from aggregator.accounts.passwords import Passwords
from aggregator.crypto import KeyRing
from aggregator.introspection.freshness import FreshTokens
from aggregator.introspection.response import RecentInstitutions
from aggregator.metrics import Metrics
from aggregator.oauth.client_jwks import MAX_DEADLINE, MAX_JWKS_BYTES, ClientJwks
from aggregator.oauth.endpoints import Endpoints
from aggregator.outbound import OutboundPolicy, OutboundSession
from aggregator.signing import SigningKeys
from aggregator.store import Store
from aggregator.upstream.contract import UpstreamPlugin
from config import Settings

#: where ``create_app`` keeps the services on the Flask application
EXTENSION = "aggregator"


@dataclass
class Services:
    settings: Settings
    keyring: KeyRing
    store: Store
    signing_keys: SigningKeys
    plugins: dict[str, UpstreamPlugin] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @cached_property
    def passwords(self) -> Passwords:
        """argon2id hashing with the configured profile."""
        return Passwords(self.settings.password_hashing)

    @cached_property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.settings.issuer)

    @cached_property
    def outbound_policy(self) -> OutboundPolicy:
        """Where requests on a client's or a plugin's behalf may go (production rules)."""
        return OutboundPolicy.from_settings(self.settings)

    @cached_property
    def client_jwks(self) -> ClientJwks:
        """Clients' ``jwks_uri`` key sets: fetched under the outbound policy, cached in Redis."""
        deadline = min(self.settings.upstream_timeout, MAX_DEADLINE)
        http = OutboundSession(self.outbound_policy, deadline, max_body=MAX_JWKS_BYTES)
        return ClientJwks(self.store.client_jwks, http)

    @cached_property
    def fresh_tokens(self) -> FreshTokens:
        """Upstream tokens for introspection: cache, concurrent refresh, single-flight."""
        return FreshTokens(self)

    @cached_property
    def metrics(self) -> Metrics:
        """What this process counts, served at ``/metrics`` (:mod:`aggregator.metrics`)."""
        return Metrics()

    @cached_property
    def recent_institutions(self) -> RecentInstitutions:
        """This worker's just-built ``institutions`` members (see :class:`RecentInstitutions`)."""
        return RecentInstitutions(self.settings.token_freshness)


def services() -> Services:
    """The current application's services."""
    return current_app.extensions[EXTENSION]
