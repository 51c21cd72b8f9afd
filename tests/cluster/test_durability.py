"""A write that must not be lost waits for a replica of its slot's master, and says so when
no replica confirms in time."""

from __future__ import annotations

import logging
import threading
import time

import redis

from aggregator.store import key_names
from aggregator.store.connection import RedisTopology
from aggregator.store.durability import Durability


def test_a_replica_confirms_the_write_or_the_miss_is_logged(redis_url, redis_cluster, caplog):
    client = RedisTopology(redis_url, cluster=True).connect()
    durability = Durability(client, wait_ms=200)
    try:
        client.hset(key_names.person("p1"), "id", "p1")
        assert durability.confirm("p1", "test write") is True

        master = redis_cluster.master_of(key_names.person("p1"))
        with redis_cluster.client(master) as direct:
            replica = direct.info("replication")["slave0"]["port"]
        asleep = threading.Thread(target=lambda: redis.Redis(port=replica).execute_command(
            "DEBUG", "SLEEP", "0.8"))
        asleep.start()
        time.sleep(0.1)
        client.hset(key_names.person("p1"), "id", "p1")
        with caplog.at_level(logging.WARNING, logger="aggregator.store.durability"):
            started = time.monotonic()
            assert durability.confirm("p1", "test write") is False
            assert time.monotonic() - started < 0.5  # bounded by wait_ms
        asleep.join()
        assert "not confirmed by a replica" in caplog.text
    finally:
        client.close()
