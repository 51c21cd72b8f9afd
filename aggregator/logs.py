"""JSON structured logs: one object per line, with the request id, and never a secret; and the
request counts and latencies of :mod:`aggregator.metrics`, timed by the same hook.

Only the path is logged, never the query string or the body: authorization codes, tokens and
passwords travel there.
"""

from __future__ import annotations

import json
import logging
import sys
import time
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
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)


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
