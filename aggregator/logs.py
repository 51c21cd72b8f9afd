"""JSON structured logs: one object per line, with the request id, and never a secret; and the
request counts and latencies of :mod:`aggregator.metrics`, timed by the same hook.

Only the path is logged, never the query string or the body: authorization codes, tokens and
passwords travel there.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import sys
import time
from logging.handlers import QueueHandler, QueueListener
from typing import TYPE_CHECKING

from flask import Flask, g, has_request_context, request

if TYPE_CHECKING:
    from aggregator.metrics import Metrics

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
        elif "request_id" in record.__dict__:  # captured by QueuedHandler for the writer thread
            entry["request_id"] = record.request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class QueuedHandler(QueueHandler):
    """Hands records to a writer thread (:class:`QueueListener`), so a request never waits
    for JSON encoding or a write to stderr. The message is resolved and the request id captured
    here, in the request's thread; formatting happens in the writer's."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = logging.makeLogRecord(record.__dict__)
        record.msg, record.args = record.getMessage(), None
        if has_request_context():
            record.request_id = getattr(g, "request_id", None)
        return record


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h, QueuedHandler) for h in root.handlers):
        root.setLevel(level)
        return
    output = logging.StreamHandler(sys.stderr)
    output.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = QueueListener(records, output)
    writer.start()
    # a forked gunicorn worker has the queue but not the thread: it starts its own
    os.register_at_fork(after_in_child=lambda: _restart(writer))
    atexit.register(writer.stop)  # a clean stop writes every queued line
    root.handlers[:] = [QueuedHandler(records)]
    root.setLevel(level)


def _restart(writer: QueueListener) -> None:
    writer._thread = None  # noqa: SLF001 - the parent's thread does not exist in the child
    writer.start()


def init_access_log(app: Flask, metrics: Metrics) -> None:
    """One log line per request, and its count and latency in ``metrics``."""
    log = logging.getLogger("aggregator.access")

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _log(response):
        seconds = time.perf_counter() - g.get("started", 0)
        metrics.request_served(request.endpoint, response.status_code, seconds)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 2),
                "client_id": g.get("log_client_id"),
            },
        )
        return response
