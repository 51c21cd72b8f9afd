"""Pushed authorization requests (RFC 9126): the parameters behind a one-time ``request_uri``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aggregator.crypto import new_token, token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
#: RFC 9126 §2.2: "a short lifetime", 5 to 600 seconds suggested
PAR_TTL = 60


@dataclass(frozen=True)
class PushedRequest:
    client_id: str
    params: dict[str, Any]


class PushedRequestRepository(Repository):
    def push(self, client_id: str, params: dict[str, Any], ttl: int = PAR_TTL) -> str:
        """Store ``params`` for ``client_id``; returns the ``request_uri``."""
        request_uri = REQUEST_URI_PREFIX + new_token()
        key = key_names.pushed_request(token_hash(request_uri))
        value = {"client_id": client_id, "params": params}
        self.redis.set(key, self.keyring.encrypt_json(value, key), ex=ttl)
        return request_uri

    def take(self, request_uri: str) -> PushedRequest | None:
        """The request behind ``request_uri``, exactly once (RFC 9126 §4: one-time use)."""
        if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
            return None
        key = key_names.pushed_request(token_hash(request_uri))
        blob = self.redis.getdel(key)
        if not blob:
            return None
        value = self.keyring.decrypt_json(blob.decode(), key)
        return PushedRequest(value["client_id"], value["params"])
