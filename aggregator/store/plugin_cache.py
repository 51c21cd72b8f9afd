"""The encrypted key-value cache each plugin gets (see ``PluginCache`` in the contract)."""

from __future__ import annotations

from typing import Any

import redis

from aggregator.crypto import KeyRing
from aggregator.store import key_names
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
        name = self._key(key, person_id)
        self.redis.set(name, self.keyring.encrypt_json(value, name), ex=ttl)

    def add(self, key: str, value: Any, *, ttl: int | None = None,
            person_id: str | None = None) -> bool:
        name = self._key(key, person_id)
        return bool(self.redis.set(name, self.keyring.encrypt_json(value, name), ex=ttl, nx=True))

    def delete(self, key: str, *, person_id: str | None = None) -> None:
        self.redis.delete(self._key(key, person_id))
