"""Clients' key sets fetched from their ``jwks_uri``, shared by every worker.

One entry per URI (by its SHA-256): the JWK Set it answered, or the note that it could not be
fetched, each with the time of the fetch and a TTL; plus a single-flight lease, so one worker
fetches while the others wait briefly or answer "try again". Key sets are public keys: stored
as plain JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from aggregator.store import key_names
from aggregator.store.leases import KeyLeases


@dataclass(frozen=True)
class CachedKeySet:
    """What a ``jwks_uri`` answered at ``fetched_at`` (epoch seconds); ``jwks`` None: it failed."""

    jwks: dict[str, Any] | None
    fetched_at: float


class ClientJwksRepository:
    """The cached key sets and the fetch leases of every ``jwks_uri``."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._leases = KeyLeases(client)

    def get(self, uri: str) -> CachedKeySet | None:
        raw = self.redis.get(key_names.client_jwks(_digest(uri)))
        if not raw:
            return None
        data = json.loads(raw)
        return CachedKeySet(data.get("jwks"), float(data["fetched_at"]))

    def put(self, uri: str, entry: CachedKeySet, ttl_seconds: int) -> None:
        value = json.dumps({"jwks": entry.jwks, "fetched_at": entry.fetched_at})
        self.redis.set(key_names.client_jwks(_digest(uri)), value, ex=ttl_seconds)

    def claim_fetch(self, uri: str, token: str, ttl_ms: int) -> bool:
        """Become the one fetching ``uri`` (False: someone else is, or was until ``ttl_ms`` ago)."""
        return self._leases.acquire(key_names.client_jwks_fetch(_digest(uri)), token, ttl_ms)

    def release_fetch(self, uri: str, token: str) -> None:
        self._leases.release(key_names.client_jwks_fetch(_digest(uri)), token)


def _digest(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()
