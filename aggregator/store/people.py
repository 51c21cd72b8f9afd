"""People: accounts at this AS (username + argon2id password hash)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from aggregator.store import key_names
from aggregator.store.base import Repository
from aggregator.upstream.contract import Person


@dataclass(frozen=True)
class PersonRecord:
    id: str
    username: str
    password_hash: str
    created_at: int

    def as_person(self) -> Person:
        """What plugins see of this person (never the password hash)."""
        return Person(id=self.id, username=self.username)


class UsernameTaken(Exception):
    """Another person already has this username."""


class PeopleRepository(Repository):
    """``person:{u:id}`` hashes, a global ``username:<name>`` index and the ``people`` set."""

    def create(self, username: str, password_hash: str) -> PersonRecord:
        person_id = secrets.token_hex(12)
        index = key_names.username_index(username)
        # The index lives outside the person's slot, so claim it first (SET NX) and only then
        # write the person; a claim left by a crash points at nobody and is reclaimed below.
        if not self.redis.set(index, person_id, nx=True):
            existing = self.redis.get(index)
            if existing and self.redis.exists(key_names.person(existing.decode())):
                raise UsernameTaken(username)
            if not self._reclaim(index, existing, person_id):
                raise UsernameTaken(username)
        record = PersonRecord(person_id, username, password_hash, self.now())
        self.redis.hset(
            key_names.person(person_id),
            mapping={
                "id": record.id,
                "username": record.username,
                "password_hash": record.password_hash,
                "created_at": record.created_at,
            },
        )
        self.redis.zadd(key_names.PEOPLE, {person_id: record.created_at})
        return record

    _RECLAIM = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then
        redis.call('SET', KEYS[1], ARGV[2]); return 1
    end
    return 0
    """

    def _reclaim(self, index: str, stale: bytes | None, person_id: str) -> bool:
        if stale is None:
            return bool(self.redis.set(index, person_id, nx=True))
        return bool(self.redis.eval(self._RECLAIM, 1, index, stale, person_id))

    def get(self, person_id: str) -> PersonRecord | None:
        data = self.decode(self.redis.hgetall(key_names.person(person_id)))
        if not data:
            return None
        return PersonRecord(data["id"], data["username"], data["password_hash"],
                            int(data["created_at"]))

    def find_by_username(self, username: str) -> PersonRecord | None:
        person_id = self.redis.get(key_names.username_index(username))
        return self.get(person_id.decode()) if person_id else None

    def set_password_hash(self, person_id: str, password_hash: str) -> None:
        self.redis.hset(key_names.person(person_id), "password_hash", password_hash)

    def list(self) -> list[PersonRecord]:
        ids = [raw.decode() for raw in self.redis.zrange(key_names.PEOPLE, 0, -1)]
        return [record for record in map(self.get, ids) if record is not None]

    def delete(self, person: PersonRecord) -> None:
        """Remove the person and every record in their slot (sessions are dropped by the caller).

        No SCAN: the keys are those the person's indexes name (registrations, grants, the
        ``person-keys`` set of the rest), deleted in one transaction within their slot; the
        global indexes (``people``, ``grant-owner:``, ``username:``) follow, each a single-key
        step that is safe to repeat.
        """
        doomed, grant_ids = self._owned_keys(person.id)
        pipe = self.redis.pipeline(transaction=True)  # one slot: the person's
        pipe.delete(*doomed)
        pipe.execute()
        for grant_id in grant_ids:
            self.redis.delete(key_names.grant_owner(grant_id))
        self.redis.zrem(key_names.PEOPLE, person.id)
        self._release_username(person)

    def _owned_keys(self, person_id: str) -> tuple[list[str], list[str]]:
        """Every key in the person's slot, found through their records and indexes."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(key_names.registrations(person_id))
        pipe.smembers(key_names.grants(person_id))
        pipe.zrange(key_names.person_keys(person_id), 0, -1)
        regs, grants, others = ([raw.decode() for raw in found] for found in pipe.execute())
        doomed = [
            key_names.person(person_id), key_names.person_sessions(person_id),
            key_names.registrations(person_id), key_names.grants(person_id),
            key_names.notices(person_id), key_names.audit_person(person_id),
            key_names.person_keys(person_id), key_names.replication_probe(person_id),
            key_names.event_outbox(person_id), *others,
        ]
        for rid in regs:
            record = self.redis.hmget(key_names.registration(person_id, rid), "provider", "external_id")
            if record[0] is not None and record[1] is not None:
                doomed.append(key_names.registration_by_external(
                    person_id, record[0].decode(), record[1].decode()))
            cached = self.redis.smembers(key_names.upstream_tokens(person_id, rid))
            doomed += [key_names.upstream_token(person_id, rid, raw.decode()) for raw in cached]
            doomed += [key_names.registration(person_id, rid), key_names.upstream_tokens(person_id, rid),
                       key_names.registration_lock(person_id, rid),
                       key_names.registration_refresh_failure(person_id, rid)]
        for gid in grants:
            doomed += [key_names.grant(person_id, gid), key_names.grant_pairs(person_id, gid),
                       key_names.grant_tokens(person_id, gid),
                       key_names.legacy_grant_registrations(person_id, gid)]
        return doomed, grants

    _RELEASE = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """

    def _release_username(self, person: PersonRecord) -> None:
        self.redis.eval(self._RELEASE, 1, key_names.username_index(person.username), person.id)
