"""Pending upstream links: what a callback needs, keyed by the SHA-256 of ``state``.

Single use (GETDEL) and short-lived: a replayed or late callback finds nothing.
"""

from __future__ import annotations

from typing import Any

from aggregator.crypto import token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository

LINK_STATE_TTL = 600


class LinkStateRepository(Repository):
    def put(self, state: str, value: dict[str, Any], ttl: int = LINK_STATE_TTL) -> None:
        key = key_names.link_state(token_hash(state))
        self.redis.set(key, self.keyring.encrypt_json(value, key), ex=ttl)

    def take(self, state: str) -> dict[str, Any] | None:
        key = key_names.link_state(token_hash(state))
        blob = self.redis.getdel(key)
        return self.keyring.decrypt_json(blob.decode(), key) if blob else None
