"""What every repository shares: the Redis client, the key ring and a clock."""

from __future__ import annotations

import time
from typing import Any

import redis

from aggregator.crypto import KeyRing


class Repository:
    """Base of the repositories: one per record kind, each the only reader/writer of its keys."""

    def __init__(self, client: redis.Redis, keyring: KeyRing) -> None:
        self.redis = client
        self.keyring = keyring

    @staticmethod
    def now() -> int:
        return int(time.time())

    @staticmethod
    def decode(mapping: dict[Any, Any]) -> dict[str, str]:
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in mapping.items()
        }
