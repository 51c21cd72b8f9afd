"""Client assertion ids seen (RFC 7523 §3: a ``jti`` may be used only once)."""

from __future__ import annotations

from aggregator.crypto import token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository


class ClientAssertionRepository(Repository):
    def first_use(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record ``jti`` until the assertion expires; False when it was seen before."""
        ttl = max(1, expires_at - self.now() + 60)  # + the clock-skew leeway we accept
        return bool(self.redis.set(key_names.client_assertion(client_id, token_hash(jti)), 1,
                                   nx=True, ex=ttl))
