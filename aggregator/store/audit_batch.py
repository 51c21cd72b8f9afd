"""Audit events written in batches, off the request's path, by one thread per process.

An introspection that releases tokens hands its event to the batch and answers; the batch's
thread writes what gathered within :data:`FLUSH_SECONDS` in one pipelined round trip. A clean
stop loses nothing: :func:`flush_all` runs at interpreter exit and from gunicorn's
``worker_exit`` hook, and a reader in the same process flushes first. The crash bound: a
process killed outright (SIGKILL, OOM) loses at most the events of its last
:data:`FLUSH_SECONDS` (plus a batch in flight). While Redis refuses the writes, events wait in
memory (at most :data:`MAX_PENDING`; the oldest go first, with a warning) and are retried.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from aggregator.store.faults import store_fault

log = logging.getLogger("aggregator.audit")

#: how long events gather before they are written (the crash bound)
FLUSH_SECONDS = 0.005
#: events kept while Redis refuses them
MAX_PENDING = 10_000
#: pause before retrying a batch Redis refused
RETRY_SECONDS = 0.5

_batches: weakref.WeakSet[AuditBatch] = weakref.WeakSet()


class AuditBatch:
    """Events waiting to be written by ``write(events)`` (one round trip per call)."""

    def __init__(self, write: Callable[[Sequence[Any]], None]) -> None:
        self._write = write
        self._pending: deque[Any] = deque()
        self._mutex = threading.Lock()  # the queue
        self._writing = threading.Lock()  # one writer at a time, so events keep their order
        self._wake = threading.Event()
        self._pid = 0
        _batches.add(self)

    def add(self, event: Any) -> None:
        """Queue ``event``; written within FLUSH_SECONDS."""
        self._ensure_thread()
        with self._mutex:
            self._pending.append(event)
            while len(self._pending) > MAX_PENDING:
                self._pending.popleft()
                log.warning("audit events dropped: Redis refused them for too long")
        self._wake.set()

    def flush(self) -> None:
        """Write every queued event now (raises the store fault that prevented it, the events
        kept for the next attempt; anything else is a bug: logged, and those events dropped so
        they cannot jam the queue)."""
        with self._writing:
            with self._mutex:
                events = list(self._pending)
                self._pending.clear()
            if not events:
                return
            try:
                self._write(events)
            except Exception as exc:
                if store_fault(exc) is None:
                    log.exception("audit events dropped: they could not be written")
                    return
                with self._mutex:  # back in front, in order, for the next attempt
                    self._pending.extendleft(reversed(events))
                raise

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._mutex:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked child starts its own thread
            threading.Thread(target=_run, args=(weakref.ref(self), self._wake), daemon=True,
                             name="audit-batch").start()


def _run(ref: weakref.ref[AuditBatch], wake: threading.Event) -> None:
    while True:
        wake.wait(1.0)
        batch = ref()
        if batch is None:
            return
        if not wake.is_set():
            continue
        wake.clear()
        time.sleep(FLUSH_SECONDS)  # let the batch gather
        try:
            batch.flush()
        except Exception as exc:  # a store fault (Redis, Sentinel or a cluster unreachable)
            log.warning("audit events not written yet; retrying", extra={"error": type(exc).__name__})
            wake.set()
            time.sleep(RETRY_SECONDS)
        del batch


def flush_all() -> None:
    """Write every process-local batch now (at exit, and when a gunicorn worker stops)."""
    for batch in list(_batches):
        try:
            batch.flush()
        except Exception:  # a store fault: flush has kept them, but nobody will try again
            log.exception("audit events lost at shutdown: Redis refused them")


atexit.register(flush_all)
