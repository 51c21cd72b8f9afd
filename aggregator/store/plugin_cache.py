"""The encrypted key-value cache each plugin gets (see ``PluginCache`` in the contract)."""

from __future__ import annotations

import time
from typing import Any

import redis

from aggregator.crypto import KeyRing
from aggregator.store import key_names
from aggregator.store.base import remember_person_key
from aggregator.upstream.contract import PluginCache


class RedisPluginCache(PluginCache):
    def __init__(self, client: redis.Redis, keyring: KeyRing, plugin: str) -> None:
        self.redis = client
        self.keyring = keyring
        self.plugin = plugin

    def _key(self, key: str, person_id: str | None) -> str:
        return key_names.plugin_cache(self.plugin, key, person_id)

    def get(self, key: str, *, person_id: str | None = None) -> Any | None:
        name = self._key(key, person_id)
        blob = self.redis.get(name)
        return self.keyring.decrypt_json(blob.decode(), name) if blob else None

    def set(self, key: str, value: Any, *, ttl: int | None = None,
            person_id: str | None = None) -> None:
        self._write(key, value, ttl, person_id, only_new=False)

    def add(self, key: str, value: Any, *, ttl: int | None = None,
            person_id: str | None = None) -> bool:
        return self._write(key, value, ttl, person_id, only_new=True)

    def _write(self, key: str, value: Any, ttl: int | None, person_id: str | None,
               only_new: bool) -> bool:
        name = self._key(key, person_id)
        blob = self.keyring.encrypt_json(value, name)
        if person_id is None:
            return bool(self.redis.set(name, blob, ex=ttl, nx=only_new))
        # a person's entry is listed among their keys (one slot), so deleting them finds it
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(name, blob, ex=ttl, nx=only_new)
        remember_person_key(pipe, person_id, name, None if ttl is None else time.time() + ttl)
        return bool(pipe.execute()[0])

    def delete(self, key: str, *, person_id: str | None = None) -> None:
        self.redis.delete(self._key(key, person_id))
