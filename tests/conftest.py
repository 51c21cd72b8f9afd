"""Shared fixtures: a real embedded Redis server per test session, and the fixture modules."""

from __future__ import annotations

import pytest
import redis

from aggregator.embedded_redis import EmbeddedRedis
from aggregator.testing.servers import reserve_port

pytest_plugins = [
    "tests.fixtures.aggregator",
    "tests.fixtures.sandbox",
    "tests.fixtures.moneyhub",
]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the whole run; each test starts from empty databases."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), reserve_port()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """Database 0 of the session's Redis server, flushed (with every other database)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
