"""Prometheus metrics: what the AS counts, and ``GET /metrics`` that serves them.

The code calls the small named methods of :class:`Metrics` (``svc.metrics.refreshed(...)``);
no other module touches a metric object. Every family is named ``aggregator_...``; see
docs/operators.md, "Metrics".

Under gunicorn (``make run``) each worker, and the refresher, is its own process: the runner sets
``PROMETHEUS_MULTIPROC_DIR``, each process writes its values there, and ``/metrics`` adds them up
across processes (prometheus_client's multiprocess mode; a dead worker's files are merged by
:func:`process_exited`, called from gunicorn's ``child_exit`` hook). Without that variable (an AS
embedded in a test) each app counts in its own registry.

``/metrics`` answers only with ``Authorization: Bearer <AGGREGATOR_METRICS_TOKEN>``, and 404
when that setting is unset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import redis
from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from aggregator.crypto import constant_time_equals, token_hash
from aggregator.errors import InvalidBearerToken, NotFound, api_blueprint
from aggregator.security import bearer_token
from aggregator.store.faults import store_fault

__all__ = ["Metrics", "bp", "multiprocess_dir", "process_exited"]

#: set by the runner for gunicorn's workers and the refresher: one directory they all write to
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# the ``_created`` series double every counter for what Prometheus does not need (and the
# multiprocess mode has none): one shape of output in both modes
disable_created_metrics()

#: seconds; a bank call may take AGGREGATOR_REFRESH_TIMEOUT (60 s by default)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process is one of several (gunicorn, refresher)."""
    return os.environ.get(MULTIPROC_ENV) or None


def process_exited(pid: int, directory: str | None = None) -> None:
    """A process that wrote metrics is gone: merge its files, drop its live gauges."""
    directory = directory or multiprocess_dir()
    if directory:
        multiprocess.mark_process_dead(pid, directory)


class Metrics:
    """One AS process's (or one embedded app's) metric families, and the names the code calls."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "aggregator_http_requests_total", "HTTP requests answered, by Flask endpoint and status.",
            ["endpoint", "status"], registry=r)
        self._request_seconds = Histogram(
            "aggregator_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["endpoint", "status"], registry=r)
        self._introspections = Counter(
            "aggregator_introspections_total",
            "Introspections answered (RFC 7662), by whether the token was active.",
            ["active"], registry=r)
        self._released = Counter(
            "aggregator_upstream_tokens_released_total",
            "Upstream tokens handed to apps in introspection responses, by provider.",
            ["provider"], registry=r)
        self._refreshes = Counter(
            "aggregator_upstream_refreshes_total",
            "Upstream token refreshes, by provider and outcome "
            "(ok, reauth_required, expired, error, store_fault).",
            ["provider", "outcome"], registry=r)
        self._refresh_seconds = Histogram(
            "aggregator_upstream_refresh_duration_seconds", "Time an upstream refresh took.",
            ["provider", "outcome"], buckets=UPSTREAM_BUCKETS, registry=r)
        self._waits = Counter(
            "aggregator_single_flight_waits_total",
            "Refreshes a request waited for instead of making: on another's lease, or on the refresher.",
            ["on"], registry=r)
        self._wait_seconds = Histogram(
            "aggregator_single_flight_wait_duration_seconds",
            "Time a request waited for another's refresh.", ["on"], buckets=UPSTREAM_BUCKETS,
            registry=r)
        self._store_faults = Counter(
            "aggregator_store_faults_total",
            "Redis errors met, by reason (unreachable, loading, read_only, misconf, out_of_memory, other).",
            ["reason"], registry=r)
        self._store_retries = Counter(
            "aggregator_store_retries_total", "Redis operations tried again after a Redis error.",
            ["operation"], registry=r)
        self._jobs_taken = Counter(
            "aggregator_refresher_jobs_taken_total", "Refresh jobs the refresher took from the queue.",
            registry=r)
        self._jobs_done = Counter(
            "aggregator_refresher_jobs_done_total",
            "Refresh jobs finished, by outcome (ok, failed, blocked, gone, left_pending).",
            ["outcome"], registry=r)
        self._jobs_running = Gauge(
            "aggregator_refresher_jobs_running", "Refresh jobs in hand right now.",
            multiprocess_mode="livesum", registry=r)
        self._sets_queued = Counter(
            "aggregator_event_sets_queued_total",
            "SETs made for apps' event streams, by what became of them (push, poll, held).",
            ["outcome"], registry=r)
        self._pushes = Counter(
            "aggregator_event_pushes_total",
            "SET push attempts (RFC 8935), by outcome (delivered, retry, failing, gone, held, "
            "poll, dropped).", ["outcome"], registry=r)

    # ------------------------------------------------------------------ HTTP

    def request_served(self, endpoint: str | None, status: int, seconds: float) -> None:
        """One answered request; ``endpoint`` is Flask's endpoint name (None: no route matched)."""
        labels = (endpoint or "unmatched", str(status))
        self._requests.labels(*labels).inc()
        self._request_seconds.labels(*labels).observe(seconds)

    # ------------------------------------------------------------------ introspection

    def introspected(self, active: bool) -> None:
        self._introspections.labels("true" if active else "false").inc()

    def tokens_released(self, providers: Iterable[str]) -> None:
        """Upstream tokens in one response, one provider name per token."""
        for provider in providers:
            self._released.labels(provider).inc()

    def refreshed(self, provider: str, outcome: str, seconds: float) -> None:
        """One upstream refresh: a bank call's outcome, or ``store_fault`` when our Redis failed."""
        self._refreshes.labels(provider, outcome).inc()
        self._refresh_seconds.labels(provider, outcome).observe(seconds)

    def waited(self, on: str, seconds: float) -> None:
        """A request waited for a refresh it did not make: ``on`` is ``lease`` (another
        request's) or ``refresher``."""
        self._waits.labels(on).inc()
        self._wait_seconds.labels(on).observe(seconds)

    # ------------------------------------------------------------------ the store

    def store_failed(self, exc: BaseException) -> None:
        """A Redis error met, counted by the store fault it amounts to (``other`` when none)."""
        fault = store_fault(exc)
        self._store_faults.labels(fault.name.lower() if fault else "other").inc()

    def store_retried(self, operation: str) -> None:
        self._store_retries.labels(operation).inc()

    # ------------------------------------------------------------------ the refresher

    def jobs_taken(self, count: int) -> None:
        if count:
            self._jobs_taken.inc(count)

    def job_done(self, outcome: str) -> None:
        self._jobs_done.labels(outcome).inc()

    @contextmanager
    def job_running(self) -> Iterator[None]:
        self._jobs_running.inc()
        try:
            yield
        finally:
            self._jobs_running.dec()

    # ------------------------------------------------------------------ exposition

    # ------------------------------------------------------------------ events to apps

    def set_queued(self, outcome: str) -> None:
        self._sets_queued.labels(outcome).inc()

    def pushed(self, outcome: str) -> None:
        self._pushes.labels(outcome).inc()

    def exposition(self, queue: Callable[[], Mapping[str, int | bool]]) -> bytes:
        """The text format: every process's values under gunicorn, else this registry's; and
        the refresh queue as ``queue()`` (``RefreshJobs.status``) finds it in Redis now."""
        registry = CollectorRegistry()
        directory = multiprocess_dir()
        if directory is None:
            registry.register(self.registry)  # a registry is a collector of its metrics
        else:
            multiprocess.MultiProcessCollector(registry, path=directory)
        registry.register(RefreshQueue(queue))
        return generate_latest(registry)


class RefreshQueue:
    """The refresh queue's depth and whether a refresher is alive, read at scrape time (one
    value for the whole deployment, whichever worker answers). Left out while Redis is away:
    ``aggregator_store_faults_total`` and ``/readyz`` say so already."""

    def __init__(self, status: Callable[[], Mapping[str, int | bool]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        try:
            status = self.status()
        except redis.RedisError:
            return
        depth = GaugeMetricFamily(
            "aggregator_refresher_queue_jobs",
            "Refresh jobs in the queue: queued (not yet done, taken or not), pending (taken, "
            "not yet acknowledged).", labels=["state"])
        depth.add_metric(["queued"], int(status["queued"]))
        depth.add_metric(["pending"], int(status["pending"]))
        yield depth
        yield GaugeMetricFamily("aggregator_refresher_alive",
                                "1 while a refresher's heartbeat is fresh, else 0.",
                                value=1 if status["refresher_alive"] else 0)


bp: Blueprint = api_blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Prometheus text format, for the bearer of ``AGGREGATOR_METRICS_TOKEN`` only."""
    from aggregator.services import services  # services builds Metrics: import when serving

    svc = services()
    expected = svc.settings.metrics_token
    if not expected:
        raise NotFound("Not found.")  # metrics are off: as if there were no such page
    supplied = bearer_token()
    if supplied is None:
        raise InvalidBearerToken("/metrics needs the metrics token (Bearer).", with_code=False)
    if not constant_time_equals(token_hash(supplied), token_hash(expected)):
        raise InvalidBearerToken("The metrics token is wrong.")
    return Response(svc.metrics.exposition(svc.store.refresh_jobs.status), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
