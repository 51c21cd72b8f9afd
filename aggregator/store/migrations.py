"""Schema migrations of the stored records, run at start-up when needed (idempotent).

The schema version is one Redis key. Each migration may be interrupted and run again, by one
process or by several at once (every gunicorn worker starts the app): each step is written so
that repeating it changes nothing.

- 2: a grant's set of registrations becomes (registration -> data scopes) pairs. Each
  registration a grant covered gets the grant's data scopes as they were at that consent, no
  wider, which is what the person allowed under the one-set model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from aggregator.store import key_names
from aggregator.upstream.contract import DATA_SCOPES

log = logging.getLogger("aggregator.store")

#: the schema this code reads and writes
SCHEMA = 2


@dataclass(frozen=True)
class MigrationReport:
    """What one run did: the version found, the version left, the grants rewritten."""

    found: int
    now: int
    grants: int = 0


def schema_version(client: redis.Redis) -> int:
    """The stored schema version; 1 for data from before versions were kept (or none at all)."""
    raw = client.get(key_names.SCHEMA_VERSION)
    return int(raw) if raw else 1


def migrate(client: redis.Redis) -> MigrationReport:
    """Bring the stored records to :data:`SCHEMA`; a no-op (one GET) when they are already."""
    found = schema_version(client)
    if found >= SCHEMA:
        return MigrationReport(found, found)
    grants = _grants_to_pairs(client)
    client.set(key_names.SCHEMA_VERSION, SCHEMA)
    log.info("schema migrated", extra={"from_version": found, "to_version": SCHEMA, "grants": grants})
    return MigrationReport(found, SCHEMA, grants)


def _grants_to_pairs(client: redis.Redis) -> int:
    """Schema 2: every grant's registration set becomes pairs (one person's keys at a time)."""
    rewritten = 0
    for raw_person in client.zrange(key_names.PEOPLE, 0, -1):
        person_id = raw_person.decode()
        for raw_grant in client.smembers(key_names.grants(person_id)):
            grant_id = raw_grant.decode()
            legacy = key_names.legacy_grant_registrations(person_id, grant_id)
            registration_ids = [raw.decode() for raw in client.smembers(legacy)]
            if not registration_ids:
                continue
            scopes = (client.hget(key_names.grant(person_id, grant_id), "scopes") or b"").decode()
            data = " ".join(sorted(frozenset(scopes.split()) & DATA_SCOPES))
            pipe = client.pipeline(transaction=True)  # one slot: the person's
            if data:
                for registration_id in registration_ids:  # HSETNX: a repeat changes nothing
                    pipe.hsetnx(key_names.grant_pairs(person_id, grant_id), registration_id, data)
            pipe.delete(legacy)
            pipe.execute()
            rewritten += 1
    return rewritten
