"""Authorization requests waiting for the person (login, consent, connecting a bank).

Keyed by the SHA-256 of a random id that only the person's browser sees, and bound to a
random value in a browser cookie (see ``aggregator.oauth.pending``), so the id alone is useless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aggregator.crypto import new_token, token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository

#: long enough to sign up and connect an institution in the middle of a consent
PENDING_TTL = 30 * 60


@dataclass(frozen=True)
class PendingAuthorization:
    id: str
    client_id: str
    binding_hash: str
    created_at: int
    #: the validated authorization request (see ``aggregator.oauth.request.AuthorizationRequest``)
    request: dict[str, Any]


class PendingAuthorizationRepository(Repository):
    def put(self, client_id: str, binding_hash: str, request: dict[str, Any],
            ttl: int = PENDING_TTL) -> PendingAuthorization:
        pending = PendingAuthorization(new_token(), client_id, binding_hash, self.now(), request)
        key = key_names.pending_authorization(token_hash(pending.id))
        value = {"client_id": client_id, "binding_hash": binding_hash,
                 "created_at": pending.created_at, "request": request}
        self.redis.set(key, self.keyring.encrypt_json(value, key), ex=ttl)
        return pending

    def get(self, pending_id: str) -> PendingAuthorization | None:
        if not pending_id or len(pending_id) > 100:
            return None
        key = key_names.pending_authorization(token_hash(pending_id))
        blob = self.redis.get(key)
        return self._decode(pending_id, key, blob) if blob else None

    def take(self, pending_id: str) -> PendingAuthorization | None:
        """Remove and return: a decision completes a pending request exactly once."""
        if not pending_id or len(pending_id) > 100:
            return None
        key = key_names.pending_authorization(token_hash(pending_id))
        blob = self.redis.getdel(key)
        return self._decode(pending_id, key, blob) if blob else None

    def _decode(self, pending_id: str, key: str, blob: bytes) -> PendingAuthorization:
        value = self.keyring.decrypt_json(blob.decode(), key)
        return PendingAuthorization(pending_id, value["client_id"], value["binding_hash"],
                                    value["created_at"], value["request"])
