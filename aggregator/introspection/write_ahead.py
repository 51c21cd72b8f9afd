"""The last resort for a rotated refresh token that Redis would not take.

When an upstream has answered a refresh, its old refresh token is already spent: the new one
must reach storage. The refresh retries Redis for :data:`PERSIST_DEADLINE` seconds; if Redis is
still refusing, the result is appended here (encrypted with the key ring, fsynced) and written
to Redis at the next start of any AS process or refresher, or by a refresher's next loop.
A file is claimed by renaming it before it is replayed, so two processes never replay one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from aggregator.crypto import KeyRing
from aggregator.store.registrations import RegistrationRepository
from aggregator.upstream.contract import UpstreamToken

log = logging.getLogger("aggregator.introspection")

#: how long a refresh keeps retrying Redis before it writes here
PERSIST_DEADLINE = 30.0
_AAD = "write-ahead:refresh"


class WriteAhead:
    """Refresh results waiting for Redis, one encrypted JSON line each, under the data dir."""

    def __init__(self, data_dir: Path, keyring: KeyRing) -> None:
        self.directory = Path(data_dir) / "write-ahead"
        self.keyring = keyring

    def append(self, person_id: str, registration_id: str, scopes: frozenset[str],
               token: UpstreamToken, secrets_value: dict[str, Any] | None,
               metadata: dict[str, Any] | None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = self.keyring.encrypt_json({
            "person_id": person_id, "registration_id": registration_id, "scopes": sorted(scopes),
            "token": asdict(token), "secrets": secrets_value, "metadata": metadata,
            "at": time.time(),
        }, _AAD)
        path = self.directory / f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}.wal"
        with path.open("w", encoding="utf-8") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())
        log.error("refresh result kept on disk until Redis takes it",
                  extra={"registration_id": registration_id, "file": path.name})
        return path

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.wal")) if self.directory.exists() else []

    def replay(self, registrations: RegistrationRepository) -> int:
        """Write every waiting result to Redis; returns how many were replayed."""
        replayed = 0
        for path in self.pending():
            claimed = path.with_suffix(f".replaying-{os.getpid()}")
            try:
                path.rename(claimed)  # atomic: only one process gets it
            except OSError:
                continue
            try:
                self._replay(registrations, self.keyring.decrypt_json(claimed.read_text().strip(), _AAD))
            except redis.RedisError:
                with contextlib.suppress(OSError):
                    claimed.rename(path)  # not yet: keep it for the next try
                break
            claimed.unlink()
            replayed += 1
        return replayed

    @staticmethod
    def _replay(registrations: RegistrationRepository, entry: dict[str, Any]) -> None:
        record = registrations.get(entry["person_id"], entry["registration_id"])
        if record is None:
            return  # removed meanwhile: nothing to keep
        registrations.store_refreshed(record, frozenset(entry["scopes"]),
                                      UpstreamToken(**entry["token"]), entry["secrets"],
                                      entry["metadata"])
        log.warning("refresh result replayed from disk", extra={"registration_id": record.id})
