"""Single-flight for upstream refreshes: one Redis lease per registration, across every worker.

The lease is ``SET key <random token> NX PX <ttl>``; only the holder of the token may extend or
delete it (compare-and-swap Lua scripts), so a holder whose lease ran out can never release a
lease that someone else has taken since. While a refresh runs, one keeper thread per process
extends the leases it holds, so a slow upstream never lets a second refresh start (which, with
refresh-token rotation, would burn the grant); a crashed holder's lease lapses after ``ttl``.

A holder whose refresh failed leaves a short note under its token, so the requests that waited
on it report the same failure instead of queueing up to hit a failing upstream one by one.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass

import redis

from aggregator.store import key_names

log = logging.getLogger("aggregator.introspection")

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


class Lease:
    """One registration's refresh lease (see the module docstring)."""

    def __init__(self, locks: RefreshLocks, person_id: str, registration_id: str) -> None:
        self._locks = locks
        self.key = key_names.registration_lock(person_id, registration_id)
        self.note_key = key_names.registration_refresh_failure(person_id, registration_id)
        self.token = secrets.token_hex(16)
        self.held = False

    def acquire(self) -> bool:
        self.held = bool(self._locks.redis.set(self.key, self.token, nx=True, px=self._locks.ttl_ms))
        if self.held:
            self._locks.keeper.hold(self)
        return self.held

    def release(self) -> None:
        if not self.held:
            return
        self._locks.keeper.drop(self)
        self.held = False
        self._locks.release_script(keys=[self.key], args=[self.token])

    def extend(self) -> bool:
        return bool(self._locks.extend_script(keys=[self.key], args=[self.token, self._locks.ttl_ms]))

    def holder(self) -> str | None:
        """The token of whoever holds the lease now (None when free)."""
        found = self._locks.redis.get(self.key)
        return found.decode() if found else None

    def leave_failure(self, status: str, error: str) -> None:
        """Tell the waiters why this holder's refresh failed (before :meth:`release`)."""
        note = json.dumps({"holder": self.token, "status": status, "error": error})
        self._locks.redis.set(self.note_key, note, px=FAILURE_NOTE_MS)

    def failure_of(self, holder: str) -> FailureNote | None:
        """The failure left by ``holder``, if that holder failed."""
        raw = self._locks.redis.get(self.note_key)
        if not raw:
            return None
        data = json.loads(raw)
        if data.get("holder") != holder:
            return None
        return FailureNote(holder, data["status"], data["error"])


class RefreshLocks:
    """Factory of leases over one Redis client, with the process's keeper thread."""

    def __init__(self, client: redis.Redis, ttl_ms: int, max_hold_ms: int) -> None:
        self.redis = client
        self.ttl_ms = ttl_ms
        self.release_script = client.register_script(_RELEASE)
        self.extend_script = client.register_script(_EXTEND)
        self.keeper = LeaseKeeper(ttl_ms, max_hold_ms)

    def lease(self, person_id: str, registration_id: str) -> Lease:
        return Lease(self, person_id, registration_id)


class LeaseKeeper:
    """One daemon thread per process extending the leases held here, up to ``max_hold_ms``.

    Started lazily and again after a fork, so gunicorn workers each get their own.
    """

    def __init__(self, ttl_ms: int, max_hold_ms: int) -> None:
        self.interval = ttl_ms / 3000
        self.max_hold = max_hold_ms / 1000
        self._held: dict[Lease, float] = {}
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._pid = 0

    def hold(self, lease: Lease) -> None:
        with self._mutex:
            self._held[lease] = time.monotonic()
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="lease-keeper", daemon=True).start()

    def drop(self, lease: Lease) -> None:
        with self._mutex:
            self._held.pop(lease, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            now = time.monotonic()
            with self._mutex:
                held = list(self._held.items())
            for lease, since in held:
                if now - since > self.max_hold:
                    # a plugin stuck this long is broken: let the lease lapse rather than
                    # block the registration forever
                    self.drop(lease)
                    log.warning("refresh lease abandoned", extra={"lock": lease.key})
                    continue
                try:
                    lease.extend()
                except redis.RedisError:
                    log.warning("refresh lease not extended", extra={"lock": lease.key})
