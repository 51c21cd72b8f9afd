"""Redis repositories, one per record kind. Only this package knows key names and TTLs.

:class:`Store` is the one place that builds them: every repository shares its connection pool
and key ring, and is built on first use.
"""

from __future__ import annotations

from functools import cached_property

import redis

from aggregator.crypto import KeyRing
from aggregator.store import key_names
from aggregator.store.assertions import ClientAssertionRepository
from aggregator.store.audit import AuditRepository
from aggregator.store.authorizations import PendingAuthorizationRepository
from aggregator.store.client_jwks import ClientJwksRepository
from aggregator.store.clients import ClientRepository
from aggregator.store.codes import AuthorizationCodeRepository
from aggregator.store.connection import RedisTopology
from aggregator.store.dpop import DPoPProofRepository
from aggregator.store.durability import Durability
from aggregator.store.events import EventOutbox, EventStreams
from aggregator.store.grants import GrantRepository
from aggregator.store.leases import RefreshLeases
from aggregator.store.link_states import LinkStateRepository
from aggregator.store.local_cache import LocalCache, dedicated_connection
from aggregator.store.notices import NoticeRepository
from aggregator.store.par import PushedRequestRepository
from aggregator.store.payments import PaymentRepository
from aggregator.store.people import PeopleRepository
from aggregator.store.readiness import ReadinessProbe
from aggregator.store.refresh_jobs import RefreshJobs
from aggregator.store.registrations import RegistrationRepository
from aggregator.store.sessions import SessionRepository
from aggregator.store.signing_keys import SigningKeyRepository
from aggregator.store.throttle import LOGIN_LIMITS, SIGNUP_LIMITS, Throttle
from aggregator.store.tokens import TokenRepository


class Store:
    """The repositories over one Redis connection pool."""

    def __init__(self, client: redis.Redis, keyring: KeyRing, wait_ms: int = 0,
                 cache: LocalCache | None = None) -> None:
        self.redis = client
        self.keyring = keyring
        self.durability = Durability(client, wait_ms)
        #: the worker's cache of hot records (None: every read goes to Redis)
        self.cache = cache

    @classmethod
    def connect(cls, where: str | RedisTopology, keyring: KeyRing, *,
                local_cache: bool = False) -> Store:
        """The store at a Redis URL, or at a :class:`RedisTopology` (cluster, Sentinels);
        ``local_cache``: with the worker cache of :mod:`.local_cache` (never on a cluster)."""
        topology = RedisTopology(where) if isinstance(where, str) else where
        client = topology.connect()
        cache = None
        if local_cache and not topology.cluster:
            cache = LocalCache(dedicated_connection(client), key_names.LOCALLY_CACHED)
        return cls(client, keyring, topology.wait_ms, cache)

    def close(self) -> None:
        """Stop the worker cache and close the pool's connections."""
        if self.cache is not None:
            self.cache.stop()
        self.redis.close()

    @cached_property
    def readiness(self) -> ReadinessProbe:
        return ReadinessProbe(self.redis)

    # ------------------------------------------------------------------ people and pages

    @cached_property
    def people(self) -> PeopleRepository:
        return PeopleRepository(self.redis, self.keyring)

    @cached_property
    def sessions(self) -> SessionRepository:
        return SessionRepository(self.redis, self.keyring)

    @cached_property
    def login_throttle(self) -> Throttle:
        return Throttle(self.redis, self.keyring, "login", LOGIN_LIMITS)

    @cached_property
    def signup_throttle(self) -> Throttle:
        return Throttle(self.redis, self.keyring, "signup", SIGNUP_LIMITS)

    @cached_property
    def notices(self) -> NoticeRepository:
        return NoticeRepository(self.redis, self.keyring)

    # ------------------------------------------------------------------ registrations

    @cached_property
    def registrations(self) -> RegistrationRepository:
        return RegistrationRepository(self.redis, self.keyring, self.durability, self.cache)

    @cached_property
    def link_states(self) -> LinkStateRepository:
        return LinkStateRepository(self.redis, self.keyring)

    @cached_property
    def refresh_leases(self) -> RefreshLeases:
        return RefreshLeases(self.redis)

    @cached_property
    def refresh_jobs(self) -> RefreshJobs:
        return RefreshJobs(self.redis)

    # ------------------------------------------------------------------ the provider

    @cached_property
    def signing_keys(self) -> SigningKeyRepository:
        return SigningKeyRepository(self.redis, self.keyring)

    @cached_property
    def clients(self) -> ClientRepository:
        return ClientRepository(self.redis, self.keyring, cache=self.cache)

    @cached_property
    def client_jwks(self) -> ClientJwksRepository:
        return ClientJwksRepository(self.redis)

    @cached_property
    def assertions(self) -> ClientAssertionRepository:
        return ClientAssertionRepository(self.redis, self.keyring)

    @cached_property
    def dpop_proofs(self) -> DPoPProofRepository:
        return DPoPProofRepository(self.redis, self.keyring)

    @cached_property
    def pushed_requests(self) -> PushedRequestRepository:
        return PushedRequestRepository(self.redis, self.keyring)

    @cached_property
    def pending(self) -> PendingAuthorizationRepository:
        return PendingAuthorizationRepository(self.redis, self.keyring)

    @cached_property
    def codes(self) -> AuthorizationCodeRepository:
        return AuthorizationCodeRepository(self.redis, self.keyring)

    @cached_property
    def grants(self) -> GrantRepository:
        return GrantRepository(self.redis, self.keyring, self.durability, self.cache)

    @cached_property
    def tokens(self) -> TokenRepository:
        return TokenRepository(self.redis, self.keyring, cache=self.cache)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.redis, self.keyring)

    @cached_property
    def payments(self) -> PaymentRepository:
        return PaymentRepository(self.redis, self.keyring, self.durability)

    # ------------------------------------------------------------------ events to apps (SSF)

    @cached_property
    def event_outbox(self) -> EventOutbox:
        return EventOutbox(self.redis)

    @cached_property
    def event_streams(self) -> EventStreams:
        return EventStreams(self.redis)
