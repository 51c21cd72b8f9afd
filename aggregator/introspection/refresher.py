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
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import redis

from aggregator.store.refresh_jobs import RefreshJob

if TYPE_CHECKING:
    from aggregator.services import Services

log = logging.getLogger("aggregator.refresher")

#: jobs run at once per refresher
CONCURRENCY = 16
#: seconds between heartbeats (the heartbeat key lives HEARTBEAT_TTL_MS)
HEARTBEAT_EVERY = 1.0
#: how long a job is retried while Redis is unavailable before it is left pending
STORE_RETRY_SECONDS = 60.0


class StoreUnavailable(Exception):
    """A job could not run or be acknowledged because Redis failed: retried, not reported."""


class Refresher:
    """Takes refresh jobs from Redis and runs them on a pool of threads until stopped."""

    def __init__(self, svc: Services, *, concurrency: int = CONCURRENCY, name: str | None = None) -> None:
        self.svc = svc
        self.jobs = svc.store.refresh_jobs
        self.fresh = svc.fresh_tokens
        self.metrics = svc.metrics
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="refresher")
        self._busy = threading.Semaphore(concurrency)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: set[str] = set()  # entry ids of the jobs in hand
        self._running_mutex = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Refresher:
        """Run in a background thread (tests, or an embedding process)."""
        self._thread = threading.Thread(target=self.run, name="refresher-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; let the ones running finish (they persist what banks answered)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def run(self) -> None:
        log.info("refresher started", extra={"refresher": self.name})
        last_beat = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    self.jobs.heartbeat(self.name)
                    with self._running_mutex:
                        running = list(self._running)
                    self.jobs.touch(self.name, running)
                    self.fresh.write_ahead.replay(self.svc.store.registrations)
                    last_beat = time.monotonic()
                self._take_and_run()
            except redis.RedisError as exc:
                if self._stopping.wait(0.5):
                    break  # stopping with the rest of `make run`, whose Redis stops too
                log.warning("refresher: Redis unavailable", extra={"error": type(exc).__name__})
                self.metrics.store_failed(exc)
        log.info("refresher stopped", extra={"refresher": self.name})

    def _take_and_run(self) -> None:
        free = 0
        while free < self.concurrency and self._busy.acquire(blocking=False):
            free += 1
        if not free:
            self._stopping.wait(0.01)
            return
        try:
            taken = self.jobs.take(self.name, count=free, block_ms=200)
        except BaseException:
            for _ in range(free):
                self._busy.release()
            raise
        for _ in range(free - len(taken)):
            self._busy.release()
        self.metrics.jobs_taken(len(taken))
        for job in taken:
            self._pool.submit(self._run_job, job)

    # ------------------------------------------------------------------ one job

    def _run_job(self, job: RefreshJob) -> None:
        """Run ``job``; while Redis is unavailable, try again as soon as it may be back (the job
        is only acknowledged once its result is stored)."""
        pause = 0.2
        deadline = time.monotonic() + STORE_RETRY_SECONDS
        with self._running_mutex:
            self._running.add(job.entry_id)
        try:
            with self.metrics.job_running():
                while True:
                    try:
                        self.metrics.job_done(self.process(job))
                        return
                    except (redis.RedisError, StoreUnavailable) as exc:
                        if isinstance(exc, redis.RedisError):
                            self.metrics.store_failed(exc)
                        if self._stopping.is_set() or time.monotonic() + pause > deadline:
                            # left pending: another refresher takes it over after CLAIM_IDLE_MS
                            log.warning("refresh job left for later: store unavailable",
                                        extra={"registration_id": job.registration_id,
                                               "error": type(exc).__name__})
                            self.metrics.job_done("left_pending")
                            return
                        self._stopping.wait(pause)
                        pause = min(pause * 2, 2.0)
                        self.metrics.store_retried("refresh_job")
        except Exception:
            log.exception("refresh job failed", extra={"registration_id": job.registration_id})
            self.metrics.job_done("failed")
        finally:
            with self._running_mutex:
                self._running.discard(job.entry_id)
            self._busy.release()

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
    from aggregator import create_app
    from aggregator.services import EXTENSION
    from config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    # this process's bank calls may take the refresh timeout, not a response's deadline
    settings = dataclasses.replace(settings, upstream_timeout=settings.refresh_timeout)
    while True:  # started while Redis is restarting: wait for it rather than exit
        try:
            app = create_app(settings)
            break
        except ConfigError as exc:
            log.warning("refresher waiting for Redis", extra={"error": str(exc)})
            time.sleep(1.0)
    refresher = Refresher(app.extensions[EXTENSION])

    def _stop(signum: int, frame: object) -> None:
        refresher._stopping.set()  # noqa: SLF001 - the loop below notices and returns

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    refresher.run()
    refresher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
