"""A worker started while no cluster node answers boots all the same (gunicorn respawning a
worker during an outage), answers 503, and serves once the cluster is up."""

from __future__ import annotations

import dataclasses

import requests

from aggregator import create_app
from aggregator.testing.servers import serve_wsgi
from tests.cluster.local_cluster import LocalCluster


def test_a_worker_started_before_the_cluster_serves_503_then_recovers(make_as, tmp_path):
    cluster = LocalCluster(tmp_path / "late-cluster")
    server = make_as(REDIS_CLUSTER="true")  # only for its settings: the same kind of AS
    settings = dataclasses.replace(server.services.settings, redis_url=cluster.url,
                                   redis_cluster=True)
    app = create_app(settings, wait_for_redis=True)  # no node is running yet
    with serve_wsgi(app) as live:
        down = requests.get(f"{live.url}/jwks", timeout=20)
        assert down.status_code == 503 and "Retry-After" in down.headers
        cluster.start()
        try:
            up = requests.get(f"{live.url}/jwks", timeout=20)
            assert up.status_code == 200 and up.json()["keys"], "signing keys made once it was up"
        finally:
            cluster.stop()
