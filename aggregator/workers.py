"""What the two background processes share: the refresher and the event delivery worker.

Each takes work from a Redis consumer group (:mod:`aggregator.store.consumer_groups`) and runs
it on a pool of threads: :class:`PoolWorker` is their loop (vouch for the work in hand every
second, take as much as there are free threads, run each item, never die of a Redis outage),
and :func:`serve` their ``main`` (wait for Redis at start-up, stop on SIGTERM or SIGINT after
the work in hand is done).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import redis
from redis.exceptions import RedisClusterException

if TYPE_CHECKING:
    from aggregator.services import Services
    from config import Settings

log = logging.getLogger("aggregator.workers")

#: seconds between heartbeats (a worker's heartbeat key outlives a few of them)
HEARTBEAT_EVERY = 1.0

Item = TypeVar("Item")


class PoolWorker(ABC, Generic[Item]):
    """Takes items and runs :meth:`handle` on each, on ``concurrency`` threads, until stopped."""

    #: what the logs call this worker ("refresher", "event delivery")
    label: ClassVar[str]
    #: how long one take may block waiting for work
    take_block_ms: ClassVar[int] = 100

    def __init__(self, svc: Services, *, concurrency: int, name: str | None = None) -> None:
        self.svc = svc
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=self.label.replace(" ", "-"))
        self._busy = threading.Semaphore(concurrency)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: set[str] = set()  # entry ids of the items in hand
        self._running_mutex = threading.Lock()

    # ------------------------------------------------------------------ what a worker does

    @abstractmethod
    def beat(self, running: list[str]) -> None:
        """Every :data:`HEARTBEAT_EVERY` seconds: say this worker is alive and vouch for the
        items in hand (their entry ids), so nobody takes them over."""

    def between_takes(self) -> None:  # noqa: B027 - optional hook
        """Work done before each take (the delivery worker relays facts here)."""

    @abstractmethod
    def take(self, count: int, block_ms: int) -> Sequence[Item]:
        """Up to ``count`` items, waiting up to ``block_ms`` for the first."""

    @abstractmethod
    def handle(self, item: Item) -> None:
        """Run one item (on a pool thread); an exception is logged, never raised further."""

    def store_failed(self, exc: Exception) -> None:  # noqa: B027 - optional hook
        """The loop met a Redis failure (counted by the refresher)."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PoolWorker[Item]:
        """Run in a background thread (tests, or an embedding process)."""
        self._thread = threading.Thread(target=self.run, name=f"{self.label} loop", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Stop taking work (the loop notices within a take)."""
        self._stopping.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work; let the items in hand finish."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def run(self) -> None:
        log.info(f"{self.label} started", extra={"worker": self.name})
        last_beat = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    with self._running_mutex:
                        running = list(self._running)
                    self.beat(running)
                    last_beat = time.monotonic()
                self.between_takes()
                self._take_and_run()
            except (redis.RedisError, RedisClusterException) as exc:  # the second: no node answers
                if self._stopping.wait(0.5):
                    break  # stopping with the rest of `make run`, whose Redis stops too
                log.warning(f"{self.label}: Redis unavailable", extra={"error": type(exc).__name__})
                self.store_failed(exc)
        log.info(f"{self.label} stopped", extra={"worker": self.name})

    def _take_and_run(self) -> None:
        free = 0
        while free < self.concurrency and self._busy.acquire(blocking=False):
            free += 1
        if not free:
            self._stopping.wait(0.01)
            return
        try:
            taken = self.take(free, self.take_block_ms)
        except BaseException:
            for _ in range(free):
                self._busy.release()
            raise
        for _ in range(free - len(taken)):
            self._busy.release()
        for item in taken:
            with self._running_mutex:
                self._running.add(item.entry_id)  # type: ignore[attr-defined]
            self._pool.submit(self._run_one, item)

    def _run_one(self, item: Item) -> None:
        try:
            self.handle(item)
        except Exception:
            log.exception(f"{self.label}: an item failed unexpectedly")
        finally:
            with self._running_mutex:
                self._running.discard(item.entry_id)  # type: ignore[attr-defined]
            self._busy.release()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped meanwhile; True when stopping."""
        return self._stopping.wait(seconds)


def serve(build: Callable[[Services], PoolWorker[Any]], label: str,
          adjust: Callable[[Settings], Settings] | None = None) -> int:
    """A worker process's ``main``: build the app (waiting for Redis), run ``build(services)``
    until SIGTERM or SIGINT, then finish the items in hand."""
    import sys

    from aggregator import create_app
    from aggregator.services import EXTENSION
    from config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if adjust is not None:
        settings = adjust(settings)
    while True:  # started while Redis is restarting: wait for it rather than exit
        try:
            app = create_app(settings)
            break
        except ConfigError as exc:
            log.warning(f"{label} waiting for Redis", extra={"error": str(exc)})
            time.sleep(1.0)
    worker = build(app.extensions[EXTENSION])
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.request_stop())
    signal.signal(signal.SIGINT, lambda signum, frame: worker.request_stop())
    with app.app_context():
        worker.run()
    worker.stop()
    return 0
