"""Two AS hosts on one Redis Cluster behind one issuer (this test's AS, and a second one under
gunicorn in its own processes): 50 introspections at once, spread over both, of a registration
whose upstream token is too old cause exactly one upstream refresh (the single-flight lease,
the job queue and its markers live in Redis, not in a host)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from aggregator.testing.servers import reserve_port
from tests.cluster.conftest import bank_env
from tests.cluster.test_cluster_story import grapher_token
from tests.fixtures.aggregator import LiveAS
from tests.introspection.crowd import at_once
from tests.introspection.test_story import connect, refresh_count
from tests.oauth.apps import make_app, signed_up

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def gunicorn_host(first: LiveAS, env: dict[str, str]) -> Iterator[LiveAS]:
    """Another AS host: ``gunicorn wsgi:app`` (2 workers) with the first host's issuer, Redis
    and encryption key, on its own port."""
    port = reserve_port()
    settings = first.services.settings
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--worker-class", "gthread", "--threads", "16",
         "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env, "REDIS_URL": settings.redis_url,
                       "REDIS_CLUSTER": "true", "AGGREGATOR_ISSUER": settings.issuer,
                       "AGGREGATOR_DATA_DIR": str(settings.data_dir),
                       "AGGREGATOR_LOG_LEVEL": "WARNING",
                       "AGGREGATOR_PASSWORD_HASHING": "argon2id-minimal"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "second host not ready"
            time.sleep(0.2)
        yield dataclasses.replace(first, url=url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_fifty_introspections_over_two_hosts_refresh_upstream_once(server, sandbox_bank):
    sandbox_bank.admin.set_faults(access_token_ttl=30)  # shorter than the freshness window
    nat = signed_up(server, "nat")
    connect(nat, sandbox_bank, "astoria")
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    # the cached token (30 s) is inside the freshness window: expired for us. The refresh brings
    # a long-lived one, so a request arriving after it is stored finds it fresh (with tokens
    # shorter than the window, such a late request would rightly fetch one of its own)
    sandbox_bank.admin.set_faults(access_token_ttl=3600, latency_ms=1200)

    with gunicorn_host(server, bank_env(sandbox_bank)) as other_host:
        apps = itertools.cycle([grapher, dataclasses.replace(grapher, server=other_host)])
        pick = threading.Lock()
        # warm every worker of both hosts (each makes its cluster client on first use), so the
        # burst below meets no worker still starting while the one refresh is under way
        def next_app():
            with pick:
                return next(apps)

        at_once(32, lambda: next_app().post("/introspect", {"token": "warm-up"}, timeout=30))
        before = refresh_count(sandbox_bank)

        def introspect() -> tuple[int, str, str]:
            app = next_app()
            answer = app.post("/introspect", {"token": tokens["access_token"]}, timeout=30)
            statuses = {e["status"] for e in answer.json().get("institutions", {}).values()}
            return app.server.url, answer.status_code, ",".join(sorted(statuses))

        results = at_once(50, introspect)

    assert {(code, statuses) for _, code, statuses in results} == {(200, "ok")}, results
    assert len({host for host, _, _ in results}) == 2  # both hosts answered
    assert refresh_count(sandbox_bank) - before == 1
