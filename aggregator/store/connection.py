"""How the AS reaches Redis: one server, a Sentinel-watched primary, or a Redis Cluster.

Every client retries a failed command a few times with exponential backoff (bounded: about a
second in all), so a failover (a cluster replica promoted, Sentinel electing a new primary)
is ridden out without a restart; while no primary serves, the errors reach
:mod:`aggregator.store.faults` and the AS answers 503.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

#: one command's socket deadlines (seconds): a dead node is noticed quickly
SOCKET_TIMEOUT = 5
CONNECT_TIMEOUT = 2
#: retries of a command that met a connection error, a redirect or CLUSTERDOWN, and their
#: backoff: 0.05 s doubling, at most 0.5 s a wait (about 1.5 s in all before the 503)
RETRIES = 4


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES)


@dataclass(frozen=True)
class RedisTopology:
    """Where the data lives (from ``REDIS_URL``, ``REDIS_CLUSTER``, ``REDIS_SENTINELS``)."""

    url: str
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    #: how long a write that must not be lost waits for a replica (``AGGREGATOR_REDIS_WAIT_MS``)
    wait_ms: int = 100

    @classmethod
    def of(cls, settings: Any) -> RedisTopology:
        return cls(settings.redis_url, settings.redis_cluster, tuple(settings.redis_sentinels),
                   settings.redis_sentinel_master, settings.redis_wait_ms)

    def connect(self) -> Any:
        """A redis-py client: ``RedisCluster``, a Sentinel's ``master_for`` or ``Redis``."""
        common: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT,
                                  "socket_connect_timeout": CONNECT_TIMEOUT, "retry": _retry()}
        if self.cluster:
            # password, username and TLS (rediss://) come from the URL, for every node
            def build() -> RedisCluster:
                return RedisCluster.from_url(self.url, require_full_coverage=True, **common)
            try:
                return build()
            except (redis.RedisError, RedisClusterException):
                # the seed does not answer yet (a worker booting during an outage): build the
                # client on first use, each request failing as a store fault until it can
                return DeferredCluster(build)
        if self.sentinels:
            return self._sentinel_primary(common)
        return redis.Redis.from_url(self.url, health_check_interval=30, **common)

    def _sentinel_primary(self, common: dict[str, Any]) -> redis.Redis:
        # the URL's host is not used: the Sentinels name the primary; its password, username,
        # database and TLS still apply to the primary (the Sentinels are asked without them)
        options = parse_url(self.url)
        for unused in ("host", "port", "path"):
            options.pop(unused, None)
        if options.pop("connection_class", None) is not None:  # rediss://
            options["ssl"] = True
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs={
            "socket_timeout": CONNECT_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT})
        return sentinel.master_for(self.sentinel_master, redis_class=redis.Redis,
                                   health_check_interval=30, **common, **options)


class DeferredCluster:
    """A ``RedisCluster`` made when first used: its constructor must reach a node to learn the
    slot map, and a worker may start while none answers."""

    def __init__(self, build: Callable[[], RedisCluster]) -> None:
        self._build = build
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def client(self) -> RedisCluster:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._build()
                    except RedisClusterException as exc:  # not a RedisError: say what it means
                        raise redis.ConnectionError(f"no Redis Cluster node answers ({exc})") from None
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)


def cluster_client(client: Any) -> RedisCluster | None:
    """The ``RedisCluster`` behind ``client``, or None when it is a single server's client."""
    if isinstance(client, DeferredCluster):
        return client.client()
    return client if isinstance(client, RedisCluster) else None
