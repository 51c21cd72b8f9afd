"""Signing keys (private JWKs), encrypted with the key ring, with their retirement times."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aggregator.store import key_names
from aggregator.store.base import Repository


@dataclass(frozen=True)
class SigningKeyRecord:
    kid: str
    alg: str
    jwk: dict[str, Any]
    created_at: int
    retired_at: int | None = None


class SigningKeyRepository(Repository):
    """One Redis hash: field = kid, value = encrypted JSON of the record."""

    def _aad(self, kid: str) -> str:
        return f"{key_names.SIGNING_KEYS}:{kid}"

    def all(self) -> list[SigningKeyRecord]:
        records = []
        for kid, blob in self.decode(self.redis.hgetall(key_names.SIGNING_KEYS)).items():
            data = self.keyring.decrypt_json(blob, self._aad(kid))
            records.append(SigningKeyRecord(**data))
        return sorted(records, key=lambda record: record.created_at)

    def _encode(self, record: SigningKeyRecord) -> str:
        return self.keyring.encrypt_json(record.__dict__, self._aad(record.kid))

    def add_initial(self, records: list[SigningKeyRecord]) -> bool:
        """Store the first key set unless another worker already did (returns who won)."""
        script = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
        return 1
        """
        args: list[str] = []
        for record in records:
            args += [record.kid, self._encode(record)]
        return bool(self.redis.eval(script, 1, key_names.SIGNING_KEYS, *args))

    def replace(self, records: list[SigningKeyRecord]) -> None:
        """Write the whole set at once (rotation and pruning)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key_names.SIGNING_KEYS)
        pipe.hset(key_names.SIGNING_KEYS, mapping={r.kid: self._encode(r) for r in records})
        pipe.execute()

    def version(self) -> str:
        """A cheap fingerprint so workers notice a rotation made elsewhere: the key ids (a
        rotation adds ids and pruning removes some), without fetching the keys themselves."""
        return json.dumps(sorted(kid.decode() for kid in self.redis.hkeys(key_names.SIGNING_KEYS)))
