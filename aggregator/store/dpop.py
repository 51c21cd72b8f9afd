"""DPoP proof ids seen (RFC 9449 §11.1: a ``jti`` is accepted once within the ``iat`` window)."""

from __future__ import annotations

from aggregator.crypto import token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository


class DPoPProofRepository(Repository):
    def first_use(self, client_id: str, jti: str, ttl: int) -> bool:
        """Record ``jti`` of ``client_id`` for ``ttl`` seconds; False when it was seen before."""
        return bool(self.redis.set(key_names.dpop_proof(client_id, token_hash(jti)), 1,
                                   nx=True, ex=max(1, ttl)))
