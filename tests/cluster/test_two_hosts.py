"""Two AS hosts on one Redis Cluster behind one issuer: 50 introspections at once, spread over
both, of a registration whose upstream token is too old cause exactly one upstream refresh
(the single-flight lease, the job queue and its markers live in Redis, not in a host)."""

from __future__ import annotations

import dataclasses
import itertools
import threading

from tests.cluster.conftest import bank_env
from tests.cluster.test_cluster_story import grapher_token
from tests.introspection.crowd import at_once
from tests.introspection.test_story import connect, refresh_count
from tests.oauth.apps import make_app, signed_up


def test_fifty_introspections_over_two_hosts_refresh_upstream_once(make_as, server, sandbox_bank):
    other_host = make_as(REDIS_CLUSTER="true", AGGREGATOR_ISSUER=server.url,
                         AGGREGATOR_DATA_DIR=str(server.services.settings.data_dir),
                         **bank_env(sandbox_bank))
    sandbox_bank.admin.set_faults(access_token_ttl=30)  # shorter than the freshness window
    nat = signed_up(server, "nat")
    connect(nat, sandbox_bank, "astoria")
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    sandbox_bank.admin.set_faults(access_token_ttl=30, latency_ms=300)
    apps = itertools.cycle([grapher, dataclasses.replace(grapher, server=other_host)])
    pick = threading.Lock()
    before = refresh_count(sandbox_bank)

    def introspect() -> tuple[int, str]:
        with pick:
            app = next(apps)
        answer = app.post("/introspect", {"token": tokens["access_token"]}, timeout=30)
        statuses = {e["status"] for e in answer.json().get("institutions", {}).values()}
        return answer.status_code, ",".join(sorted(statuses))

    results = at_once(50, introspect)

    assert results.count((200, "ok")) == 50, results
    assert refresh_count(sandbox_bank) - before == 1
