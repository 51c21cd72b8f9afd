"""The refresher: the process that owns upstream refreshes (``python -m aggregator.introspection.refresher``).

Web workers queue refreshes (:mod:`aggregator.store.refresh_jobs`) and wait for the result up
to their response deadline; the refresher makes the bank call under the registration's lease,
with its own, longer timeout (``AGGREGATOR_REFRESH_TIMEOUT``), and persists the result before
acknowledging the job. So a web worker killed or timing out mid-refresh never interrupts a bank
call, and a rotated refresh token is stored even when nobody waits for it any more.

What a crash still loses: a refresher killed between the bank's answer and the Redis write (a
few milliseconds per refresh). Its job stays pending and is taken over by the next refresher,
whose refresh then fails if the bank rotated the token, and the registration says
``reauth_required``. A running job is vouched for every second, so only a dead refresher's jobs
(or one whose delivery a Redis restart lost) are taken over, after ten seconds. ``make run``
starts one refresher beside gunicorn; operators run it as a service of its own (several are
fine: each job goes to one of them). Its jobs and refreshes are counted in
:mod:`aggregator.metrics`.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from aggregator.store.refresh_jobs import RefreshJob
from aggregator.workers import PoolWorker, serve

if TYPE_CHECKING:
    from aggregator.services import Services

log = logging.getLogger("aggregator.refresher")

#: jobs run at once per refresher
CONCURRENCY = 16
#: how long a job is retried while Redis is unavailable before it is left pending
STORE_RETRY_SECONDS = 60.0


class StoreUnavailable(Exception):
    """A job could not run or be acknowledged because Redis failed: retried, not reported."""


class Refresher(PoolWorker[RefreshJob]):
    """Takes refresh jobs from Redis and runs them on a pool of threads until stopped."""

    label = "refresher"
    take_block_ms = 200

    def __init__(self, svc: Services, *, concurrency: int = CONCURRENCY, name: str | None = None) -> None:
        super().__init__(svc, concurrency=concurrency, name=name)
        self.jobs = svc.store.refresh_jobs
        self.fresh = svc.fresh_tokens
        self.metrics = svc.metrics

    def beat(self, running: list[str]) -> None:
        self.jobs.heartbeat(self.name)
        self.jobs.touch(self.name, running)
        self.fresh.write_ahead.replay(self.svc.store.registrations)

    def take(self, count: int, block_ms: int) -> Sequence[RefreshJob]:
        taken = self.jobs.take(self.name, count=count, block_ms=block_ms)
        self.metrics.jobs_taken(len(taken))
        return taken

    def store_failed(self, exc: Exception) -> None:
        self.metrics.store_failed(exc)

    # ------------------------------------------------------------------ one job

    def handle(self, job: RefreshJob) -> None:
        """Run ``job``; while Redis is unavailable, try again as soon as it may be back (the job
        is only acknowledged once its result is stored)."""
        pause = 0.2
        deadline = time.monotonic() + STORE_RETRY_SECONDS
        try:
            with self.metrics.job_running():
                while True:
                    try:
                        self.metrics.job_done(self.process(job))
                        return
                    except (redis.RedisError, StoreUnavailable) as exc:
                        if isinstance(exc, redis.RedisError):
                            self.metrics.store_failed(exc)
                        if self.stopping or time.monotonic() + pause > deadline:
                            # left pending: another refresher takes it over after CLAIM_IDLE_MS
                            log.warning("refresh job left for later: store unavailable",
                                        extra={"registration_id": job.registration_id,
                                               "error": type(exc).__name__})
                            self.metrics.job_done("left_pending")
                            return
                        self.pause(pause)
                        pause = min(pause * 2, 2.0)
                        self.metrics.store_retried("refresh_job")
        except Exception:
            log.exception("refresh job failed", extra={"registration_id": job.registration_id})
            self.metrics.job_done("failed")

    def process(self, job: RefreshJob) -> str:
        """Refresh one registration (single-flight under its lease), store the result, then
        acknowledge; a failure is left for the requests waiting on it. The job's outcome:
        ``ok``, ``failed``, ``blocked`` (the registration needs the person) or ``gone``."""
        store = self.svc.store
        person = store.people.get(job.person_id)
        record = store.registrations.get(job.person_id, job.registration_id)
        if person is None or record is None:
            self.jobs.done(job)  # removed meanwhile: nothing to refresh
            return "gone"
        blocked = self.fresh.blocked(record, time.time())
        if blocked is not None:
            self.jobs.done(job, (blocked.status, blocked.error or ""))
            return "blocked"
        seen = store.registrations.cached_token(job.person_id, job.registration_id, job.scopes)
        deadline = time.monotonic() + self.svc.settings.upstream_timeout
        outcome = self.fresh.refresh(person.as_person(), record, job.scopes, seen, deadline,
                                     min_remaining=job.min_remaining)
        if outcome.store_fault:
            raise StoreUnavailable(outcome.error)
        failure = None if outcome.token is not None else (outcome.status, outcome.error or "")
        self.jobs.done(job, failure)
        return "ok" if failure is None else "failed"


def main() -> int:
    """Run a refresher until SIGTERM or SIGINT (then finish the jobs in hand)."""
    # this process's bank calls may take the refresh timeout, not a response's deadline
    return serve(Refresher, "refresher", lambda settings: dataclasses.replace(
        settings, upstream_timeout=settings.refresh_timeout))


if __name__ == "__main__":
    sys.exit(main())
