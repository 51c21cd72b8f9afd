"""A real Redis Cluster (3 masters, 3 replicas) per test module; the AS runs on it with
``REDIS_CLUSTER=true`` while the sandbox bank stays on the session's standalone Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.cluster.local_cluster import LocalCluster
from tests.fixtures.aggregator import LiveAS
from tests.fixtures.sandbox import SANDBOX_REDIS_DB, redis_database
from tests.oauth.apps import INITIAL_ACCESS_TOKEN


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_url(redis_cluster) -> str:
    """The cluster's seed node, every master emptied (the AS's ``REDIS_URL`` in this package)."""
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def sandbox_redis_url(redis_server) -> str:
    """The bank keeps a standalone Redis (``SANDBOX_REDIS_URL``)."""
    url = redis_database(redis_server.url, SANDBOX_REDIS_DB)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def bank_env(bank) -> dict[str, str]:
    return {
        "AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
        "AGGREGATOR_PLUGINS": "sandbox",
        "SANDBOX_URL": bank.url,
        "SANDBOX_CLIENT_ID": bank.client_id,
        "SANDBOX_CLIENT_SECRET": bank.client_secret,
        "AGGREGATOR_UPSTREAM_TIMEOUT": "2",
    }


@pytest.fixture
def server(make_as, sandbox_bank) -> LiveAS:
    """The AS on the cluster, with the sandbox plugin."""
    return make_as(REDIS_CLUSTER="true", **bank_env(sandbox_bank))
