"""The delivery worker (``python -m aggregator.events.delivery``): relays outbox facts into SETs
and pushes them to the apps' endpoints (RFC 8935).

Guarantees (docs/operators.md "Event delivery"):

- **at least once**: a push leaves the queue only when the receiver answered 2xx (RFC 8935
  §2.2 says 202), or when it is put aside for a retry or held, each by one script. A worker
  killed mid-push leaves the delivery pending; another worker (or this one restarted) takes it
  over after ``CLAIM_IDLE_MS``. A receiver may then see a SET twice: the same ``jti``.
- **backoff**: attempt n (from 0) waits a random time up to ``BASE_DELAY * 2**n`` seconds,
  capped at ``MAX_DELAY`` (full jitter); after ``MAX_ATTEMPTS`` the stream is paused as failing
  (its SSF status says why) and its SETs are held until the app enables it again.
- **nothing blocks**: pushes run on a pool of threads, through the one outbound client
  (deadline, no redirects, the production address rules); a slow receiver holds one thread
  for ``PUSH_DEADLINE`` seconds at most.

``make run`` starts one beside gunicorn and restarts it; several may run (each delivery goes to
one of them).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import redis

from aggregator.events.relay import relay_once
from aggregator.events.types import PUSH
from aggregator.outbound import OutboundError, OutboundSession
from aggregator.store.events import Delivery

if TYPE_CHECKING:
    from aggregator.services import Services

log = logging.getLogger("aggregator.events.delivery")

CONCURRENCY = 8
BASE_DELAY = 0.5
MAX_DELAY = 300.0
MAX_ATTEMPTS = 10
PUSH_DEADLINE = 10.0
#: a receiver's answer is read up to this size (RFC 8935 §2.3 error bodies are small)
MAX_ANSWER = 64 * 1024
HEARTBEAT_EVERY = 1.0


def backoff(attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Full jitter: a random wait up to ``base * 2**attempt`` seconds, at most ``cap``."""
    return random.uniform(0, min(cap, base * 2 ** attempt))  # noqa: S311 - not a secret


class DeliveryWorker:
    """Relays facts and pushes SETs until stopped."""

    def __init__(self, svc: Services, *, concurrency: int = CONCURRENCY,
                 max_attempts: int = MAX_ATTEMPTS, base_delay: float = BASE_DELAY,
                 name: str | None = None) -> None:
        self.svc = svc
        self.streams = svc.store.event_streams
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.http = OutboundSession(svc.outbound_policy, PUSH_DEADLINE, max_body=MAX_ANSWER)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="ssf-push")
        self._busy = threading.Semaphore(concurrency)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: set[str] = set()
        self._mutex = threading.Lock()

    def start(self) -> DeliveryWorker:
        """Run in a background thread (tests, or an embedding process)."""
        self._thread = threading.Thread(target=self.run, name="ssf-delivery", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def run(self) -> None:
        log.info("event delivery started", extra={"worker": self.name})
        last_beat = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    self.streams.heartbeat(self.name)
                    with self._mutex:
                        running = list(self._running)
                    self.streams.touch(self.name, running)
                    last_beat = time.monotonic()
                relay_once(self.svc)
                self.streams.promote_due()
                self._take_and_push()
            except redis.RedisError as exc:
                log.warning("event delivery: Redis unavailable", extra={"error": type(exc).__name__})
                if self._stopping.wait(0.5):
                    break
        log.info("event delivery stopped", extra={"worker": self.name})

    def _take_and_push(self) -> None:
        free = 0
        while free < self.concurrency and self._busy.acquire(blocking=False):
            free += 1
        if not free:
            self._stopping.wait(0.01)
            return
        try:
            taken = self.streams.take(self.name, count=free, block_ms=100)
        except BaseException:
            for _ in range(free):
                self._busy.release()
            raise
        for _ in range(free - len(taken)):
            self._busy.release()
        for delivery in taken:
            with self._mutex:
                self._running.add(delivery.entry_id)
            self._pool.submit(self._push_one, delivery)

    def _push_one(self, delivery: Delivery) -> None:
        try:
            self.svc.metrics.pushed(self.push(delivery))
        except redis.RedisError as exc:  # left pending: taken over after CLAIM_IDLE_MS
            log.warning("event delivery left pending", extra={"error": type(exc).__name__})
        except Exception:
            log.exception("event delivery failed unexpectedly")
        finally:
            with self._mutex:
                self._running.discard(delivery.entry_id)
            self._busy.release()

    def push(self, delivery: Delivery) -> str:
        """RFC 8935 §2: POST the SET; ``delivered``, ``retry``, ``failing``, ``gone`` (or, for a
        stream no longer pushed to, ``held``, ``poll`` or ``dropped``)."""
        stream = self.streams.get(delivery.client_id)
        if stream is None or stream.method != PUSH or stream.status != "enabled":
            return self.streams.redirect(delivery)  # the stream changed since it was queued
        try:
            answer = self.http.post(stream.endpoint_url, data=delivery.set.encode(),
                                    headers={"Content-Type": "application/secevent+jwt",
                                             "Accept": "application/json"})
            if 200 <= answer.status_code < 300:
                self.streams.delivered(delivery)
                return "delivered"
            reason = f"the endpoint answered {answer.status_code}"
        except OutboundError as exc:
            reason = f"{exc.host} {exc.reason}"
        attempts = delivery.attempt + 1
        give_up = attempts >= self.max_attempts
        retry_at = None if give_up else time.time() + backoff(delivery.attempt, self.base_delay)
        why = (f"Delivery failed {attempts} times ({reason}); SETs are held: fix the endpoint "
               f"and set the status to enabled.")
        outcome = self.streams.failed(delivery, retry_at=retry_at, reason=why)
        log.info("event push failed", extra={"client_id": delivery.client_id, "attempt": attempts,
                                             "outcome": outcome})
        return outcome


def main() -> int:
    """Run a delivery worker until SIGTERM or SIGINT (then finish the pushes in hand)."""
    from aggregator import create_app
    from aggregator.services import EXTENSION
    from config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    while True:  # started while Redis is restarting: wait for it rather than exit
        try:
            app = create_app(settings)
            break
        except ConfigError as exc:
            log.warning("event delivery waiting for Redis", extra={"error": str(exc)})
            time.sleep(1.0)
    worker = DeliveryWorker(app.extensions[EXTENSION])

    def _stop(signum: int, frame: object) -> None:
        worker._stopping.set()  # noqa: SLF001 - the loop notices and returns

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with app.app_context():
        worker.run()
    worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
