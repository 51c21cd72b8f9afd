"""``/metrics`` under `make run`: gunicorn's workers and the refresher are separate processes,
and what each counted is added up in one scrape, including what a worker counted before it died."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.fixtures.metrics import METRICS_TOKEN, scrape
from tests.foundation.running import Runner, start_runner

REQUESTS = 30


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def as_workers(runner: Runner) -> list[int]:
    """The AS's gunicorn workers (children of the master serving ``wsgi:app``)."""
    for child in children(runner.process.pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"wsgi:app" in cmdline:
            return sorted(children(child))
    raise AssertionError("no gunicorn master for wsgi:app")


def healthz_count(runner: Runner) -> float:
    return scrape(runner.url).value("aggregator_http_requests_total", endpoint="health.healthz",
                                    status="200")


def test_counts_add_up_across_workers_and_outlive_a_dead_worker(run_env, tmp_path):
    run_env.update(AGGREGATOR_WORKERS="2", AGGREGATOR_METRICS_TOKEN=METRICS_TOKEN)
    metrics_dir = Path(run_env["AGGREGATOR_DATA_DIR"]) / "metrics"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_1.db").write_bytes(b"a previous run's file")  # cleaned at start
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        runner.wait_ready()
        assert not (metrics_dir / "counter_1.db").exists()
        deadline = time.monotonic() + 30
        while len(workers := as_workers(runner)) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
        for _ in range(REQUESTS):  # a new connection each: the workers share them out
            assert requests.get(f"{runner.url}/healthz", timeout=10).status_code == 200
        assert healthz_count(runner) == REQUESTS

        # a worker dies (as when gunicorn's timeout kills it): gunicorn starts another
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (workers[0] in (now := as_workers(runner)) or len(now) != 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers[0] not in now and len(now) == 2
        for _ in range(REQUESTS):
            assert requests.get(f"{runner.url}/healthz", timeout=10).status_code == 200

        seen = scrape(runner.url)
        assert seen.value("aggregator_http_requests_total", endpoint="health.healthz",
                          status="200") == 2 * REQUESTS
        assert seen.value("aggregator_http_requests_total", endpoint="metrics.scrape",
                          status="200") == 1  # the scrape before this one
        # the dead worker's live gauge is dropped (child_exit); its counters still count
        assert not list(metrics_dir.glob(f"gauge_livesum_{workers[0]}.db"))
        assert seen.value("aggregator_refresher_jobs_running") == 0
        written = {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}
        assert str(workers[0]) in written
    finally:
        runner.stop()
