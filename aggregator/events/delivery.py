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
import random
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from aggregator.events.relay import relay_once
from aggregator.events.types import PUSH
from aggregator.outbound import OutboundError, OutboundSession
from aggregator.store.events import Delivery
from aggregator.workers import PoolWorker, serve

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


def backoff(attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Full jitter: a random wait up to ``base * 2**attempt`` seconds, at most ``cap``."""
    return random.uniform(0, min(cap, base * 2 ** attempt))  # noqa: S311 - not a secret


class DeliveryWorker(PoolWorker[Delivery]):
    """Relays facts and pushes SETs until stopped."""

    label = "event delivery"

    def __init__(self, svc: Services, *, concurrency: int = CONCURRENCY,
                 max_attempts: int = MAX_ATTEMPTS, base_delay: float = BASE_DELAY,
                 name: str | None = None) -> None:
        super().__init__(svc, concurrency=concurrency, name=name)
        self.streams = svc.store.event_streams
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.http = OutboundSession(svc.outbound_policy, PUSH_DEADLINE, max_body=MAX_ANSWER)

    def beat(self, running: list[str]) -> None:
        self.streams.heartbeat(self.name)
        self.streams.touch(self.name, running)

    def between_takes(self) -> None:
        relay_once(self.svc)
        self.streams.promote_due()

    def take(self, count: int, block_ms: int) -> Sequence[Delivery]:
        return self.streams.take(self.name, count=count, block_ms=block_ms)

    def handle(self, delivery: Delivery) -> None:
        try:
            self.svc.metrics.pushed(self.push(delivery))
        except redis.RedisError as exc:  # left pending: taken over after CLAIM_IDLE_MS
            log.warning("event delivery left pending", extra={"error": type(exc).__name__})

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
    return serve(DeliveryWorker, "event delivery")


if __name__ == "__main__":
    sys.exit(main())
