"""What every repository shares: the Redis client, the key ring and a clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis

from aggregator.crypto import KeyRing
from aggregator.store import key_names
from aggregator.store.durability import Durability
from aggregator.store.local_cache import LocalCache

T = TypeVar("T")


def remember_person_key(pipe: Any, person_id: str, key: str, expires_at: float | None) -> None:
    """List ``key`` (in the person's slot) among the keys deleting the person must find, until
    it expires (None: never); entries already expired are dropped, so the index stays small."""
    index = key_names.person_keys(person_id)
    pipe.zadd(index, {key: float("inf") if expires_at is None else expires_at}, gt=True)
    pipe.zremrangebyscore(index, "-inf", f"({int(time.time())}")


class Repository:
    """Base of the repositories: one per record kind, each the only reader/writer of its keys."""

    def __init__(self, client: redis.Redis, keyring: KeyRing,
                 durability: Durability | None = None, cache: LocalCache | None = None) -> None:
        self.redis = client
        self.keyring = keyring
        self.durability = durability
        self.cache = cache

    def cached(self, key: str, load: Callable[[], T | None],
               deps: Callable[[T], Iterable[str]] | None = None) -> T | None:
        """``load()``, through the worker's cache when there is one (:mod:`.local_cache`):
        only for records under ``key_names.LOCALLY_CACHED``, whose changes Redis announces."""
        if self.cache is None:
            return load()
        return self.cache.read(key, load, deps)

    def cached_many(self, keys: Sequence[str],
                    load: Callable[[list[str]], dict[str, T | None]]) -> dict[str, T | None]:
        """:meth:`cached` for several keys: ``load(missing)`` reads the others in one go."""
        if self.cache is None:
            return load(list(keys))
        return self.cache.read_many(keys, load)

    def replicated(self, person_id: str, what: str) -> None:
        """After a write that must not be lost: wait (bounded) for a replica to have it."""
        if self.durability is not None:
            self.durability.confirm(person_id, what)

    @staticmethod
    def now() -> int:
        return int(time.time())

    @staticmethod
    def decode(mapping: dict[Any, Any]) -> dict[str, str]:
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in mapping.items()
        }
