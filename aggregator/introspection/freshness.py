"""Fresh upstream tokens for a grant's registrations: cache, concurrent refresh, single-flight.

For each registration the outcome is a token valid for at least ``token_freshness`` seconds,
or the reason there is none. Cached tokens (encrypted, per registration and scope set) are used
while fresh. The others are refreshed concurrently on a thread pool, each bounded by
``upstream_timeout``, so a response waits for the slowest upstream rather than the sum, and one
failing upstream only marks its own entry. A refresh runs under the registration's Redis lease
(:mod:`.single_flight`): many introspections at once cause one upstream call, the others wait
for its result. What the plugin returns, rotated refresh token included, is persisted in one
transaction before the token is used (``RegistrationRepository.store_refreshed``); a refresh
still runs to completion and is persisted when the response that asked for it has given up.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import redis

from aggregator.introspection.single_flight import Lease, RefreshLocks
from aggregator.introspection.write_ahead import PERSIST_DEADLINE, WriteAhead
from aggregator.store.registrations import RegistrationRecord
from aggregator.upstream.contract import (
    Person,
    TokenResult,
    UpstreamError,
    UpstreamToken,
    UpstreamUnavailable,
)

if TYPE_CHECKING:
    from aggregator.services import Services


T = TypeVar("T")
log = logging.getLogger("aggregator.introspection")

#: refreshes running at once per process (across all requests)
POOL_SIZE = 64
#: a token in use is renewed by the refresher when it has less than freshness + this left
RENEW_AHEAD = 30
#: how long a queued job keeps others from queueing the same (a dead refresher's job is
#: taken over after CLAIM_IDLE_MS anyway)
JOB_TTL_MS = 120_000

NEEDS_PERSON = {
    "reauth_required": "The connection needs to be renewed by the person.",
    "expired": "The consent at the institution has expired; the person must renew it.",
    "error": "The connection is not working; the person must reconnect it.",
}


@dataclass(frozen=True)
class Outcome:
    """One registration's result: ``status`` ok with a token, or a status and an error text."""

    status: str
    token: UpstreamToken | None = None
    error: str | None = None
    #: our own store failed, not the institution: worth trying again as soon as it is back
    store_fault: bool = False


def _ok(token: UpstreamToken) -> Outcome:
    return Outcome("ok", token)


def _failed(status: str, error: str) -> Outcome:
    return Outcome(status, None, error)


class FreshTokens:
    """The introspection endpoint's source of upstream tokens (one per process)."""

    def __init__(self, svc: Services, pool_size: int = POOL_SIZE) -> None:
        self.svc = svc
        self.jobs = svc.store.refresh_jobs
        self.write_ahead = WriteAhead(svc.settings.data_dir, svc.keyring)
        self.persist_deadline = PERSIST_DEADLINE
        self.freshness = svc.settings.token_freshness
        self.timeout = svc.settings.upstream_timeout
        timeout_ms = math.ceil(self.timeout * 1000)
        self.locks = RefreshLocks(svc.store.refresh_leases, ttl_ms=timeout_ms + 2000,
                                  max_hold_ms=10 * timeout_ms + 5000)
        self.pool_size = pool_size
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_mutex = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        # created lazily, and again in a forked worker (threads do not survive a fork)
        with self._pool_mutex:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.pool_size, thread_name_prefix="refresh")
                self._pool_pid = os.getpid()
            return self._pool

    # ------------------------------------------------------------------ the fan-out

    def collect(
        self, person_id: str, wanted: Iterable[tuple[RegistrationRecord, frozenset[str]]]
    ) -> dict[str, Outcome]:
        """Registration id -> outcome, within about ``upstream_timeout`` seconds; each
        registration's token is for the data scopes paired with it."""
        now = time.time()
        outcomes: dict[str, Outcome] = {}
        stale: dict[str, tuple[RegistrationRecord, frozenset[str], UpstreamToken | None]] = {}
        renew: list[tuple[RegistrationRecord, frozenset[str]]] = []
        usable: list[tuple[RegistrationRecord, frozenset[str]]] = []
        for record, scopes in wanted:
            blocked = self.blocked(record, now)
            if blocked is None:
                usable.append((record, scopes))
            else:
                outcomes[record.id] = blocked
        # every cached token in one round trip
        tokens = self.svc.store.registrations.cached_tokens(
            person_id, [(record.id, scopes) for record, scopes in usable]) if usable else {}
        for record, scopes in usable:
            cached = tokens[record.id]
            if cached is not None and self._fresh(cached, now):
                outcomes[record.id] = _ok(cached)
                if not cached.fresh_for(self.freshness + RENEW_AHEAD, now):
                    renew.append((record, scopes))
            else:
                stale[record.id] = (record, scopes, cached)
        refresher = bool(stale or renew) and self.jobs.refresher_alive()
        if refresher:  # in use and soon stale: the refresher renews it before anyone waits
            for record, scopes in renew:
                self.jobs.request(person_id, record.id, scopes, self.freshness + RENEW_AHEAD, JOB_TTL_MS)
        if stale:
            person = self._person(person_id)
            if person is None:
                return {**outcomes, **{rid: _failed("error", "The person's account is gone.")
                                       for rid in stale}}
            deadline = time.monotonic() + self.timeout
            # with a refresher running, the bank call is its own and outlives this request;
            # without one, this process's pool makes it (and still persists it after a timeout)
            get = self.from_refresher if refresher else self.refresh
            futures: dict[Future[Outcome], RegistrationRecord] = {
                self.pool.submit(get, person, record, scopes, seen, deadline): record
                for record, scopes, seen in stale.values()
            }
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            for future, record in futures.items():
                if future.done():
                    outcomes[record.id] = future.result()
                else:
                    outcomes[record.id] = self._timed_out(record)
        return outcomes

    def _person(self, person_id: str) -> Person | None:
        record = self.svc.store.people.get(person_id)
        return record.as_person() if record else None

    def blocked(self, record: RegistrationRecord, now: float) -> Outcome | None:
        """Why no token can be had for ``record`` without the person, if so."""
        if record.status != "ok":
            return _failed(record.status, record.error or NEEDS_PERSON.get(record.status, ""))
        if record.consent_expires_at is not None and record.consent_expires_at <= now:
            return _failed("expired", NEEDS_PERSON["expired"])
        if record.provider not in self.svc.plugins:
            return _failed("error", f"The provider {record.provider!r} is not enabled on this server.")
        return None

    def _fresh(self, token: UpstreamToken, now: float) -> bool:
        return token.expires_at - now >= self.freshness

    def _usable(self, token: UpstreamToken | None, seen: UpstreamToken | None,
                min_remaining: int | None = None) -> bool:
        """Fresh (``min_remaining`` seconds left, by default the freshness window), or new since
        ``seen`` (an upstream whose tokens live shorter than the freshness window cannot do
        better, and refreshing again would not help)."""
        if token is None:
            return False
        now = time.time()
        if token.fresh_for(self.freshness if min_remaining is None else min_remaining, now):
            return True
        return token.expires_at > now and (seen is None or token.access_token != seen.access_token)

    def _timed_out(self, record: RegistrationRecord) -> Outcome:
        return _failed("error", f"{record.institution_name} did not answer within "
                                f"{self.timeout:g} seconds; try again later.")

    def _still_working(self, record: RegistrationRecord) -> Outcome:
        return _failed("error", f"{record.institution_name} is still being refreshed; "
                                "try again in a moment.")

    # ------------------------------------------------------------------ through the refresher

    def from_refresher(
        self,
        person: Person,
        record: RegistrationRecord,
        scopes: frozenset[str],
        seen: UpstreamToken | None,
        deadline: float,
    ) -> Outcome:
        """Queue the refresh (once, however many ask) and wait for its result until
        ``deadline``; the refresh itself runs to completion in the refresher either way."""
        since, started = time.time(), time.monotonic()
        metrics = self.svc.metrics
        try:
            self.jobs.request(person.id, record.id, scopes, self.freshness, JOB_TTL_MS)
            registrations = self.svc.store.registrations

            def result() -> Outcome | None:
                cached = registrations.cached_token(person.id, record.id, scopes)
                if self._usable(cached, seen):
                    return _ok(cached)  # type: ignore[arg-type]
                failed = self.jobs.failure_since(person.id, record.id, scopes, since)
                return _failed(failed.status, failed.error) if failed is not None else None

            try:
                return _poll(result, deadline, cap=0.05) or self._still_working(record)
            finally:
                metrics.waited("refresher", time.monotonic() - started)
        except redis.RedisError as exc:
            metrics.store_failed(exc)
            return _store_fault()

    # ------------------------------------------------------------------ one registration

    def refresh(
        self,
        person: Person,
        record: RegistrationRecord,
        scopes: frozenset[str],
        seen: UpstreamToken | None,
        deadline: float,
        min_remaining: int | None = None,
    ) -> Outcome:
        """A fresh token for ``record``: refresh it under its lease, or wait for the holder."""
        lease = self.locks.lease(person.id, record.id)
        metrics = self.svc.metrics
        started = time.monotonic()
        try:
            while time.monotonic() < deadline:
                if lease.acquire():
                    try:
                        return self._refresh_held(person, record, scopes, seen, lease, min_remaining)
                    finally:
                        lease.release()
                holder = lease.holder()
                if holder is None:
                    continue  # released between our SET NX and GET: try again
                waiting = time.monotonic()
                released = self._await_release(lease, holder, deadline)
                metrics.waited("lease", time.monotonic() - waiting)
                if not released:
                    return self._timed_out(record)
                cached = self.svc.store.registrations.cached_token(person.id, record.id, scopes)
                if self._usable(cached, seen, min_remaining):
                    return _ok(cached)  # type: ignore[arg-type]
                note = lease.failure_of(holder)
                if note is not None:
                    return _failed(note.status, note.error)
                # the holder vanished without a result (it crashed): take over
            return self._timed_out(record)
        except redis.RedisError as exc:  # our store, not the bank: never blame the institution
            log.warning("refresh: store unavailable", extra={"registration_id": record.id})
            metrics.store_failed(exc)
            metrics.refreshed(record.provider, "store_fault", time.monotonic() - started)
            return _store_fault()
        except Exception:  # a response must never fail because of one registration
            log.exception("refresh failed", extra={"registration_id": record.id,
                                                   "provider": record.provider})
            return _failed("error", f"{record.institution_name} could not be reached; "
                                    "try again later.")

    def _await_release(self, lease: Lease, holder: str, deadline: float) -> bool:
        """Poll until ``holder`` lets go of the lease; False at the deadline."""
        return bool(_poll(lambda: lease.holder() != holder or None, deadline, cap=0.025))

    def _refresh_held(
        self,
        person: Person,
        record: RegistrationRecord,
        scopes: frozenset[str],
        seen: UpstreamToken | None,
        lease: Lease,
        min_remaining: int | None = None,
    ) -> Outcome:
        registrations = self.svc.store.registrations
        # Another holder may have finished just before we got the lease: look at the cache
        # again. Its rotated secrets need no second look: ``plugin_view`` reads them now.
        # (A status it set meanwhile is not re-read: asking upstream again gives the same.)
        cached = registrations.cached_token(person.id, record.id, scopes)
        if self._usable(cached, seen, min_remaining):
            return _ok(cached)  # type: ignore[arg-type]
        plugin = self.svc.plugins[record.provider]
        started = time.monotonic()

        def bank_answered(outcome: str) -> None:
            self.svc.metrics.refreshed(record.provider, outcome, time.monotonic() - started)

        try:
            result = plugin.access_token(registrations.plugin_view(record, person), scopes)
        except UpstreamUnavailable as exc:
            # transient: the entry says so, the registration keeps its status
            bank_answered("error")
            lease.leave_failure("error", exc.description)
            return _failed("error", exc.description)
        except UpstreamError as exc:
            bank_answered(exc.status)
            registrations.set_status(record, exc.status, exc.description)
            lease.leave_failure(exc.status, exc.description)
            return _failed(exc.status, exc.description)
        except Exception:
            bank_answered("error")
            message = f"{record.institution_name} could not be reached; try again later."
            lease.leave_failure("error", message)
            raise
        bank_answered("ok")
        token = result.token
        # Persist first: the upstream may already have invalidated the old refresh token.
        self._persist(record, scopes, result)
        log.info("upstream token refreshed", extra={
            "registration_id": record.id, "provider": record.provider,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        return _ok(token)

    def _persist(self, record: RegistrationRecord, scopes: frozenset[str], result: TokenResult) -> None:
        """Store a refresh's result, retrying Redis for ``persist_deadline`` seconds, then
        on disk (:class:`WriteAhead`): the bank has spent the old refresh token already."""
        deadline = time.monotonic() + self.persist_deadline
        pause = 0.05
        while True:
            try:
                self.svc.store.registrations.store_refreshed(record, scopes, result.token,
                                                             result.secrets, result.metadata)
                return
            except redis.RedisError as exc:
                self.svc.metrics.store_failed(exc)
                if time.monotonic() + pause > deadline:
                    self.write_ahead.append(record.person_id, record.id, scopes, result.token,
                                            result.secrets, result.metadata)
                    return
                log.warning("refresh result not stored yet; retrying",
                            extra={"registration_id": record.id})
                self.svc.metrics.store_retried("refresh_persist")
                time.sleep(pause)
                pause = min(pause * 2, 1.0)


def _poll(check: Callable[[], T | None], deadline: float, *, cap: float) -> T | None:
    """``check()`` again and again, pausing 5 ms growing to ``cap``, until it answers (not None)
    or ``deadline`` (a ``time.monotonic()`` value) would pass; None then."""
    pause = 0.005
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() + pause >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 1.5, cap)


def _store_fault() -> Outcome:
    return Outcome("error", None, "This server could not reach its own storage; try again in a moment.",
                   store_fault=True)
