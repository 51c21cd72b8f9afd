"""gunicorn hooks the AS needs beyond its command line: ``gunicorn -c python:aggregator.gunicorn_conf``.

``make run`` passes it; an operator running gunicorn directly passes it too, with
``PROMETHEUS_MULTIPROC_DIR`` set to an empty directory (see docs/operators.md, "Metrics").
"""

from __future__ import annotations

from typing import Any

from aggregator.metrics import process_exited
from aggregator.store.audit_batch import flush_all


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited (or was killed): merge its metrics so the counts it made stay counted."""
    process_exited(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """A worker stops (in the worker): write its queued audit events before it is gone."""
    flush_all()
