"""Grants: a person's consent to one app, as (institution, data scopes) pairs.

A grant holds the identity scopes the person allowed (``openid``, ``offline_access``, and the
data scopes they were shown), the claims they saw named on a consent page, and per registration
the data scopes granted for it. A consent adds exactly the pairs on its page: scopes granted for
one institution never spread to another. A grant is the unit the person revokes or edits; tokens
reference their grant and die with it (the token repository checks the grant on every lookup).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from aggregator.store import key_names
from aggregator.store.base import Repository
from aggregator.store.events import execute_with_fact
from aggregator.upstream.contract import DATA_SCOPES

#: registration id -> the data scopes granted for it
Pairs = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    person_id: str
    #: every scope the person allowed this app, in the order first asked
    scopes: tuple[str, ...]
    #: registration id -> data scopes granted for that institution
    pairs: Pairs
    created_at: int
    updated_at: int
    #: the identity claims (e.g. ``preferred_username``) the person saw named when consenting
    claims: frozenset[str] = field(default_factory=frozenset)

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    @property
    def registration_ids(self) -> frozenset[str]:
        return frozenset(rid for rid, scopes in self.pairs.items() if scopes)


def merged_pairs(old: Pairs, granted: Pairs, withdrawn: Pairs) -> dict[str, frozenset[str]]:
    """``old`` with ``withdrawn`` taken out and ``granted`` added, institution by institution."""
    merged = {rid: frozenset(scopes) - frozenset(withdrawn.get(rid, ())) for rid, scopes in old.items()}
    for rid, scopes in granted.items():
        merged[rid] = merged.get(rid, frozenset()) | frozenset(scopes)
    return {rid: scopes for rid, scopes in merged.items() if scopes}


class GrantRepository(Repository):
    def create(self, client_id: str, person_id: str, scopes: Iterable[str], pairs: Pairs,
               claims: Iterable[str] = ()) -> Grant:
        grant_id = secrets.token_urlsafe(18)
        now = self.now()
        grant = Grant(grant_id, client_id, person_id, tuple(dict.fromkeys(scopes)),
                      _clean(pairs), now, now, frozenset(claims))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key_names.grant(person_id, grant_id), mapping={
            "id": grant_id,
            "client_id": client_id,
            "person_id": person_id,
            "scopes": " ".join(grant.scopes),
            "claims": json.dumps(sorted(grant.claims)),
            "created_at": now,
            "updated_at": now,
        })
        if grant.pairs:
            pipe.hset(key_names.grant_pairs(person_id, grant_id), mapping=_encode(grant.pairs))
        pipe.sadd(key_names.grants(person_id), grant_id)
        pipe.execute()
        self.replicated(person_id, "new grant")
        # the owner index is global (looked up by grant id alone); written last, so a grant
        # is only reachable by id once it is complete
        self.redis.set(key_names.grant_owner(grant_id), person_id)
        return grant

    def get(self, grant_id: str) -> Grant | None:
        owner = self.redis.get(key_names.grant_owner(grant_id))
        return self.get_for(owner.decode(), grant_id) if owner else None

    def get_for(self, person_id: str, grant_id: str) -> Grant | None:
        key, pairs_key = key_names.grant(person_id, grant_id), key_names.grant_pairs(person_id, grant_id)

        def load() -> Grant | None:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(key)
            pipe.hgetall(pairs_key)
            data, pairs = pipe.execute()
            return self._grant(data, pairs) if data else None

        return self.cached(key, load, lambda _: (pairs_key,))

    def for_person(self, person_id: str) -> list[Grant]:
        ids = [raw.decode() for raw in self.redis.smembers(key_names.grants(person_id))]
        grants = [g for g in (self.get_for(person_id, gid) for gid in ids) if g is not None]
        return sorted(grants, key=lambda g: g.created_at)

    def find(self, person_id: str, client_id: str) -> list[Grant]:
        return [g for g in self.for_person(person_id) if g.client_id == client_id]

    def merge(self, grant: Grant, scopes: Iterable[str], granted: Pairs, withdrawn: Pairs,
              claims: Iterable[str]) -> Grant:
        """Apply a consent page to ``grant``: the pairs ticked there are added, those it showed
        unticked are taken out, everything else stays (atomic against concurrent changes)."""
        return self._change(grant, lambda current: (
            tuple(dict.fromkeys(current.scopes + tuple(scopes))),
            merged_pairs(current.pairs, granted, withdrawn),
            current.claims | frozenset(claims),
        ))

    def replace(self, grant: Grant, scopes: Iterable[str], pairs: Pairs, claims: Iterable[str]) -> Grant:
        """Make ``grant`` exactly this consent (Grant Management ``replace``)."""
        return self._change(grant, lambda current: (tuple(dict.fromkeys(scopes)), _clean(pairs),
                                                    frozenset(claims)))

    def narrow(self, grant: Grant, pairs: Pairs, fact: dict[str, Any] | None = None) -> Grant:
        """Keep, per institution, only what ``pairs`` still allows (the person's edit); ``fact``
        goes to the person's event outbox in the same transaction."""
        return self._change(grant, lambda current: (current.scopes, {
            rid: scopes & frozenset(pairs.get(rid, ())) for rid, scopes in current.pairs.items()
        }, current.claims), fact)

    def _change(self, grant: Grant, change: Any, fact: dict[str, Any] | None = None) -> Grant:
        """Read the grant, apply ``change``, write it back; retried if it changed meanwhile."""
        key = key_names.grant(grant.person_id, grant.id)
        pairs_key = key_names.grant_pairs(grant.person_id, grant.id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, pairs_key)
                    current = self._grant(pipe.hgetall(key), pipe.hgetall(pairs_key))
                    if current is None:
                        raise KeyError(grant.id)
                    scopes, pairs, claims = change(current)
                    pairs = _clean(pairs)
                    now = self.now()
                    pipe.multi()
                    pipe.hset(key, mapping={"scopes": " ".join(scopes), "updated_at": now,
                                            "claims": json.dumps(sorted(claims))})
                    pipe.delete(pairs_key)
                    if pairs:
                        pipe.hset(pairs_key, mapping=_encode(pairs))
                    execute_with_fact(self.redis, pipe, grant.person_id, fact)
                    self.replicated(grant.person_id, "changed grant")
                    return Grant(grant.id, grant.client_id, grant.person_id, tuple(scopes), pairs,
                                 current.created_at, now, frozenset(claims))
                except redis.WatchError:
                    continue

    def delete(self, person_id: str, grant_id: str, fact: dict[str, Any] | None = None) -> bool:
        """Delete the grant; ``fact`` goes to the person's event outbox in the same transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key_names.grant(person_id, grant_id), key_names.grant_pairs(person_id, grant_id))
        pipe.srem(key_names.grants(person_id), grant_id)
        removed = execute_with_fact(self.redis, pipe, person_id, fact)[0]
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
                        pipe.hdel(key_names.grant_pairs(person_id, grant_id), registration_id)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _grant(self, data: dict, pairs: dict) -> Grant | None:
        if not data:
            return None
        data = self.decode(data)
        claims = json.loads(data.get("claims") or "[]")
        return Grant(
            id=data["id"],
            client_id=data["client_id"],
            person_id=data["person_id"],
            scopes=tuple(data["scopes"].split()),
            pairs={rid.decode(): frozenset(scopes.decode().split()) for rid, scopes in pairs.items()},
            created_at=int(data["created_at"]),
            updated_at=int(data["updated_at"]),
            claims=frozenset(claims if isinstance(claims, list) else ()),
        )


def effective_pairs(grant: Grant, own: Pairs | None, token_scope: str) -> dict[str, frozenset[str]]:
    """What a token reaches now: its own consent's pairs (a token from before pairs: the
    grant's), within the grant as it is now, within the token's scope."""
    scope = frozenset(token_scope.split()) & DATA_SCOPES
    found = {rid: frozenset(scopes) & grant.pairs.get(rid, frozenset()) & scope
             for rid, scopes in (own if own is not None else grant.pairs).items()}
    return {rid: scopes for rid, scopes in found.items() if scopes}


def pairs_json(pairs: Pairs | None) -> str:
    """A token's or code's pairs as stored beside it ("" for none recorded)."""
    if pairs is None:
        return ""
    return json.dumps({rid: sorted(scopes) for rid, scopes in pairs.items()}, separators=(",", ":"))


def pairs_from_json(value: str | None) -> dict[str, frozenset[str]] | None:
    """The inverse of :func:`pairs_json` (None when a record predates pairs)."""
    if not value:
        return None
    return {rid: frozenset(scopes) for rid, scopes in json.loads(value).items()}


def _clean(pairs: Pairs) -> dict[str, frozenset[str]]:
    return {rid: frozenset(scopes) for rid, scopes in pairs.items() if scopes}


def _encode(pairs: Pairs) -> dict[str, str]:
    return {rid: " ".join(sorted(scopes)) for rid, scopes in pairs.items()}
