"""Refresh leases: at most one upstream refresh per registration at a time, across every worker.

A lease is ``SET key <random token> NX PX <ttl>``; only the holder of the token may extend or
delete it (compare-and-swap scripts, one key each), so a holder whose lease ran out can never
release one that someone else has taken since. A holder whose refresh failed leaves a short note
under its token, so the requests that waited on it report the same failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from aggregator.store import key_names

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

#: how long a failure note outlives the lease it belongs to
FAILURE_NOTE_MS = 10_000


@dataclass(frozen=True)
class FailureNote:
    """What a failed refresh leaves for the requests that waited on it."""

    holder: str
    status: str
    error: str


class KeyLeases:
    """``SET NX PX`` leases on keys that ``store`` modules name; only the token's holder may
    extend or release one."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    def acquire(self, key: str, token: str, ttl_ms: int) -> bool:
        return bool(self.redis.set(key, token, nx=True, px=ttl_ms))

    def release(self, key: str, token: str) -> None:
        self._release(keys=[key], args=[token])

    def extend(self, key: str, token: str, ttl_ms: int) -> bool:
        return bool(self._extend(keys=[key], args=[token, ttl_ms]))


class RefreshLeases:
    """The leases of every registration, over one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._leases = KeyLeases(client)

    def acquire(self, person_id: str, registration_id: str, token: str, ttl_ms: int) -> bool:
        return self._leases.acquire(key_names.registration_lock(person_id, registration_id), token, ttl_ms)

    def release(self, person_id: str, registration_id: str, token: str) -> None:
        self._leases.release(key_names.registration_lock(person_id, registration_id), token)

    def extend(self, person_id: str, registration_id: str, token: str, ttl_ms: int) -> bool:
        return self._leases.extend(key_names.registration_lock(person_id, registration_id), token, ttl_ms)

    def holder(self, person_id: str, registration_id: str) -> str | None:
        """The token of whoever holds the lease now (None when free)."""
        found = self.redis.get(key_names.registration_lock(person_id, registration_id))
        return found.decode() if found else None

    def leave_failure(self, person_id: str, registration_id: str, token: str, status: str,
                      error: str) -> None:
        """Tell the waiters why the holder ``token`` failed (before it releases the lease)."""
        note = json.dumps({"holder": token, "status": status, "error": error})
        self.redis.set(key_names.registration_refresh_failure(person_id, registration_id), note,
                       px=FAILURE_NOTE_MS)

    def failure_of(self, person_id: str, registration_id: str, holder: str) -> FailureNote | None:
        """The failure left by ``holder``, if that holder failed."""
        raw = self.redis.get(key_names.registration_refresh_failure(person_id, registration_id))
        if not raw:
            return None
        data = json.loads(raw)
        if data.get("holder") != holder:
            return None
        return FailureNote(holder, data["status"], data["error"])
