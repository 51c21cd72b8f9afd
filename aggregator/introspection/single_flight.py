"""Single-flight for upstream refreshes: one lease per registration, across every worker.

The lease itself lives in Redis (:mod:`aggregator.store.leases`). While a refresh runs, one
keeper thread per process extends the leases it holds, so a slow upstream never lets a second
refresh start (which, with refresh-token rotation, would burn the grant); a crashed holder's
lease lapses after ``ttl``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time

import redis

from aggregator.store.leases import FailureNote, RefreshLeases

log = logging.getLogger("aggregator.introspection")


class Lease:
    """One registration's refresh lease, as one would-be holder sees it."""

    def __init__(self, locks: RefreshLocks, person_id: str, registration_id: str) -> None:
        self._locks = locks
        self._leases = locks.leases
        self.person_id = person_id
        self.registration_id = registration_id
        self.token = secrets.token_hex(16)
        self.held = False

    def acquire(self) -> bool:
        self.held = self._leases.acquire(self.person_id, self.registration_id, self.token,
                                         self._locks.ttl_ms)
        if self.held:
            self._locks.keeper.hold(self)
        return self.held

    def release(self) -> None:
        if not self.held:
            return
        self._locks.keeper.drop(self)
        self.held = False
        self._leases.release(self.person_id, self.registration_id, self.token)

    def extend(self) -> bool:
        return self._leases.extend(self.person_id, self.registration_id, self.token,
                                   self._locks.ttl_ms)

    def holder(self) -> str | None:
        """The token of whoever holds the lease now (None when free)."""
        return self._leases.holder(self.person_id, self.registration_id)

    def leave_failure(self, status: str, error: str) -> None:
        """Tell the waiters why this holder's refresh failed (before :meth:`release`)."""
        self._leases.leave_failure(self.person_id, self.registration_id, self.token, status, error)

    def failure_of(self, holder: str) -> FailureNote | None:
        """The failure left by ``holder``, if that holder failed."""
        return self._leases.failure_of(self.person_id, self.registration_id, holder)


class RefreshLocks:
    """Factory of leases over the store's leases, with the process's keeper thread."""

    def __init__(self, leases: RefreshLeases, ttl_ms: int, max_hold_ms: int) -> None:
        self.leases = leases
        self.ttl_ms = ttl_ms
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
                where = {"registration_id": lease.registration_id}
                if now - since > self.max_hold:
                    # a plugin stuck this long is broken: let the lease lapse rather than
                    # block the registration forever
                    self.drop(lease)
                    log.warning("refresh lease abandoned", extra=where)
                    continue
                try:
                    lease.extend()
                except redis.RedisError:
                    log.warning("refresh lease not extended", extra=where)
