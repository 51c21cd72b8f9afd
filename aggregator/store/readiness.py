"""The readiness probe's write: a server that answers PING may still refuse every write."""

from __future__ import annotations

import redis

from aggregator.store import key_names

#: seconds the probe key lives: it never accumulates, and one probe a second keeps one key
PROBE_TTL = 10


class ReadinessProbe:
    """Writes one short-lived key, so a read-only replica or a ``MISCONF`` server is not ready."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def write(self) -> None:
        """Raise the Redis error when the store cannot take a write."""
        self.redis.set(key_names.READINESS_PROBE, "1", ex=PROBE_TTL)
