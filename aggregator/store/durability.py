"""Writes that must never be lost wait for a replica's acknowledgement (``WAIT``), bounded.

A rotated upstream refresh token is the only copy of a credential the bank has already
invalidated; a new registration and a consent are what the person just did. Redis replicates
asynchronously, so a master killed right after acknowledging such a write may lose it on
failover. After the write, :meth:`Durability.confirm` asks the master holding its slot to wait
(at most ``wait_ms``) until one replica has it, when the master has replicas at all.

``WAIT`` waits for the writes made *on its own connection*, and a pooled client may write on
one connection and wait on another; so the wait goes with a tiny write of its own (a probe key
in the same slot, on the same connection): the replication offset is global and only grows, so
a replica that has the probe has the write made before it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from aggregator.store import key_names
from aggregator.store.connection import cluster_client

log = logging.getLogger(__name__)

#: how long a master's replica count is trusted before it is asked again (seconds)
REPLICAS_CHECKED_EVERY = 10.0


class Durability:
    def __init__(self, client: Any, wait_ms: int) -> None:
        self.redis = client
        self.wait_ms = wait_ms
        self._replicas: dict[str, tuple[float, int]] = {}

    def confirm(self, person_id: str, what: str) -> bool:
        """Wait until a replica has the person's last write; False (logged) when none did in
        time. Never raises: the write itself succeeded, only its copy is unconfirmed."""
        if self.wait_ms <= 0:
            return True
        probe = key_names.replication_probe(person_id)
        try:
            node, name = self._node(probe)
            if self._replica_count(node, name) == 0:
                return True
            pipe = node.pipeline(transaction=False)
            pipe.set(probe, 1, px=1000)
            pipe.execute_command("WAIT", 1, self.wait_ms)
            acknowledged = int(pipe.execute()[1])
        except (redis.RedisError, RedisClusterException) as exc:
            log.warning("durable write not confirmed: the wait for a replica failed",
                        extra={"what": what, "error": type(exc).__name__})
            return False
        if acknowledged < 1:
            log.warning("durable write not confirmed by a replica in time",
                        extra={"what": what, "wait_ms": self.wait_ms})
            return False
        return True

    def _node(self, key: str) -> tuple[Any, str]:
        """The client of the master holding ``key`` (the whole client when there is one)."""
        cluster = cluster_client(self.redis)
        if cluster is not None:
            node = cluster.get_node_from_key(key)
            return cluster.get_redis_connection(node), node.name
        return self.redis, "primary"

    def _replica_count(self, node: Any, name: str) -> int:
        now = time.monotonic()
        known = self._replicas.get(name)
        if known is None or now - known[0] > REPLICAS_CHECKED_EVERY:
            known = (now, int(node.info("replication").get("connected_slaves", 0)))
            self._replicas[name] = known
        return known[1]
