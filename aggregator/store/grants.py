"""Grants: a person's consent to one app, covering chosen registrations and scopes.

A grant is the unit the person revokes; tokens reference their grant and die with it
(the token repository checks the grant on every lookup).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import redis

from aggregator.store import key_names
from aggregator.store.base import Repository


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    person_id: str
    scopes: tuple[str, ...]
    registration_ids: frozenset[str]
    created_at: int
    updated_at: int
    claims: dict = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


class GrantRepository(Repository):
    def create(
        self,
        client_id: str,
        person_id: str,
        scopes: list[str] | tuple[str, ...],
        registration_ids: set[str] | frozenset[str],
        claims: dict | None = None,
    ) -> Grant:
        grant_id = secrets.token_urlsafe(18)
        now = self.now()
        grant = Grant(grant_id, client_id, person_id, tuple(dict.fromkeys(scopes)),
                      frozenset(registration_ids), now, now, claims or {})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key_names.grant(person_id, grant_id), mapping={
            "id": grant_id,
            "client_id": client_id,
            "person_id": person_id,
            "scopes": " ".join(grant.scopes),
            "claims": json.dumps(grant.claims),
            "created_at": now,
            "updated_at": now,
        })
        if registration_ids:
            pipe.sadd(key_names.grant_registrations(person_id, grant_id), *registration_ids)
        pipe.sadd(key_names.grants(person_id), grant_id)
        pipe.execute()
        # the owner index is global (looked up by grant id alone); written last, so a grant
        # is only reachable by id once it is complete
        self.redis.set(key_names.grant_owner(grant_id), person_id)
        return grant

    def get(self, grant_id: str) -> Grant | None:
        owner = self.redis.get(key_names.grant_owner(grant_id))
        return self.get_for(owner.decode(), grant_id) if owner else None

    def get_for(self, person_id: str, grant_id: str) -> Grant | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(key_names.grant(person_id, grant_id))
        pipe.smembers(key_names.grant_registrations(person_id, grant_id))
        data, regs = pipe.execute()
        if not data:
            return None
        data = self.decode(data)
        return Grant(
            id=data["id"],
            client_id=data["client_id"],
            person_id=data["person_id"],
            scopes=tuple(data["scopes"].split()),
            registration_ids=frozenset(r.decode() for r in regs),
            created_at=int(data["created_at"]),
            updated_at=int(data["updated_at"]),
            claims=json.loads(data.get("claims") or "{}"),
        )

    def for_person(self, person_id: str) -> list[Grant]:
        ids = [raw.decode() for raw in self.redis.smembers(key_names.grants(person_id))]
        grants = [g for g in (self.get_for(person_id, gid) for gid in ids) if g is not None]
        return sorted(grants, key=lambda g: g.created_at)

    def find(self, person_id: str, client_id: str) -> list[Grant]:
        return [g for g in self.for_person(person_id) if g.client_id == client_id]

    def update(self, grant: Grant, scopes: tuple[str, ...], registration_ids: frozenset[str]) -> Grant:
        """Replace a grant's scopes and registrations in one transaction."""
        now = self.now()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key_names.grant(grant.person_id, grant.id),
                  mapping={"scopes": " ".join(scopes), "updated_at": now})
        pipe.delete(key_names.grant_registrations(grant.person_id, grant.id))
        if registration_ids:
            pipe.sadd(key_names.grant_registrations(grant.person_id, grant.id), *registration_ids)
        pipe.execute()
        return Grant(grant.id, grant.client_id, grant.person_id, scopes, registration_ids,
                     grant.created_at, now, grant.claims)

    def delete(self, person_id: str, grant_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key_names.grant(person_id, grant_id), key_names.grant_registrations(person_id, grant_id))
        pipe.srem(key_names.grants(person_id), grant_id)
        removed = pipe.execute()[0]
        self.redis.delete(key_names.grant_owner(grant_id))
        return bool(removed)

    def remove_registration(self, person_id: str, registration_id: str) -> None:
        """Take a removed registration out of every grant of its person, atomically.

        WATCH on the person's grant list makes a grant created meanwhile retry the transaction.
        """
        index = key_names.grants(person_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(index)
                    ids = [raw.decode() for raw in pipe.smembers(index)]
                    pipe.multi()
                    for grant_id in ids:
                        pipe.srem(key_names.grant_registrations(person_id, grant_id), registration_id)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue
