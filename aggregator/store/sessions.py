"""Browser sessions, kept server-side. The cookie holds a random id; Redis holds its SHA-256."""

from __future__ import annotations

import json
from typing import Any

from aggregator.crypto import token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository


class SessionRepository(Repository):
    def load(self, session_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(key_names.session(token_hash(session_id)))
        return json.loads(raw) if raw else None

    def save(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        digest = token_hash(session_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(key_names.session(digest), json.dumps(data, separators=(",", ":")), ex=ttl)
        person_id = data.get("person_id")
        if person_id:
            # remembered per person so that deleting a person ends their sessions too
            pipe.sadd(key_names.person_sessions(person_id), digest)
            pipe.expire(key_names.person_sessions(person_id), ttl)
        pipe.execute()

    def delete(self, session_id: str) -> None:
        self.redis.delete(key_names.session(token_hash(session_id)))

    def delete_all_for(self, person_id: str) -> None:
        digests = [raw.decode() for raw in self.redis.smembers(key_names.person_sessions(person_id))]
        if digests:
            self.redis.delete(*(key_names.session(digest) for digest in digests))
        self.redis.delete(key_names.person_sessions(person_id))
