"""Our access and refresh tokens: opaque 256-bit values, stored only under their SHA-256.

A token record names its client, person and grant. Every lookup checks that the grant and the
client still exist, so revoking a grant (or deleting a client) makes its tokens inactive at once,
even before :meth:`TokenRepository.revoke_grant_tokens` has deleted them.

Tokens are indexed per grant and per *family* (everything descending from one authorization
code, through refresh rotations) in sorted sets scored by expiry, in the person's hash slot.
The index is written before the token, so a token never exists unindexed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aggregator.crypto import new_token, token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository, remember_person_key
from aggregator.store.grants import Pairs, pairs_from_json, pairs_json


@dataclass(frozen=True)
class _TokenRecord:
    token_hash: str
    client_id: str
    person_id: str | None
    grant_id: str | None
    scope: str
    issued_at: int
    expires_at: int
    token_type: str = "Bearer"
    #: tokens descending from one authorization code (revoked together on code replay)
    family: str | None = None
    #: when the person authenticated (OIDC ``auth_time``), for ID tokens issued later
    auth_time: int | None = None
    #: the OIDC ``claims`` request the grant was given with (``{"userinfo": {...}, ...}``)
    claims: dict[str, Any] = field(default_factory=dict)
    #: the (registration, data scopes) pairs this token may reach at most, fixed when its
    #: authorization was consented (None: a token from before pairs, bounded by its grant alone)
    pairs: dict[str, frozenset[str]] | None = None
    #: RFC 9449 §6.1 ``cnf.jkt``: the thumbprint of the key a DPoP-bound token is bound to
    jkt: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


@dataclass(frozen=True)
class AccessTokenRecord(_TokenRecord):
    """An access token (RFC 6749 §1.4), Bearer (RFC 6750) or DPoP-bound (RFC 9449)."""


@dataclass(frozen=True)
class RefreshTokenRecord(_TokenRecord):
    """A refresh token (RFC 6749 §1.5). ``rotated_at`` is set once it has been exchanged."""

    rotated_at: int | None = None


class RefreshTokenReused(Exception):
    """A rotated refresh token was presented again (RFC 9700 §4.14.2): the grant is compromised."""

    def __init__(self, record: RefreshTokenRecord) -> None:
        super().__init__("refresh token reused")
        self.record = record


class TokenRepository(Repository):
    # Add a token key to an index (scored by expiry), prune expired members, and keep the
    # index alive as long as its longest-lived member. One key, so one slot.
    _INDEX = """
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
    local ttl = redis.call('TTL', KEYS[1])
    if ttl < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
    return 1
    """

    # ------------------------------------------------------------------ issue

    def issue_access_token(self, *, client_id: str, person_id: str | None, grant_id: str | None,
                           scope: str, ttl: int, family: str | None = None,
                           auth_time: int | None = None, claims: dict[str, Any] | None = None,
                           pairs: Pairs | None = None,
                           jkt: str | None = None) -> tuple[str, AccessTokenRecord]:
        """A new access token (bound to the key ``jkt`` when given); returns the value (handed
        out once) and its record."""
        return self._issue(AccessTokenRecord, key_names.access_token, client_id, person_id, grant_id,
                           scope, ttl, family, auth_time, claims, pairs, jkt)

    def issue_refresh_token(self, *, client_id: str, person_id: str, grant_id: str, scope: str,
                            ttl: int, family: str | None = None, auth_time: int | None = None,
                            claims: dict[str, Any] | None = None,
                            pairs: Pairs | None = None,
                            jkt: str | None = None) -> tuple[str, RefreshTokenRecord]:
        """A new refresh token (bound to the key ``jkt`` when given); returns the value (handed
        out once) and its record."""
        return self._issue(RefreshTokenRecord, key_names.refresh_token, client_id, person_id, grant_id,
                           scope, ttl, family, auth_time, claims, pairs, jkt)

    def _issue(self, cls: type, key_for: Any, client_id: str, person_id: str | None,
               grant_id: str | None, scope: str, ttl: int, family: str | None,
               auth_time: int | None, claims: dict[str, Any] | None, pairs: Pairs | None,
               jkt: str | None) -> Any:
        token = new_token()
        now = self.now()
        record = cls(token_hash(token), client_id, person_id, grant_id, scope, now, now + ttl,
                     "DPoP" if jkt else "Bearer", family, auth_time, claims or {},
                     dict(pairs) if pairs is not None else None, jkt)
        self._write(key_for(record.token_hash), record)
        return token, record

    def _write(self, key: str, record: _TokenRecord) -> None:
        ttl = max(1, record.expires_at - self.now())
        pipe = self.redis.pipeline(transaction=False)
        for index in self._indexes(record):
            pipe.execute_command("EVAL", self._INDEX, 1, index, record.expires_at, key, self.now(), ttl)
        if record.person_id and record.family:  # named by no other record of the person's
            remember_person_key(pipe, record.person_id,
                                key_names.token_family(record.person_id, record.family),
                                record.expires_at)
        mapping = {
            "client_id": record.client_id,
            "person_id": record.person_id or "",
            "grant_id": record.grant_id or "",
            "scope": record.scope,
            "issued_at": record.issued_at,
            "expires_at": record.expires_at,
            "token_type": record.token_type,
            "family": record.family or "",
            "auth_time": record.auth_time or "",
            "claims": json.dumps(record.claims, separators=(",", ":")),
            "pairs": pairs_json(record.pairs),
            "jkt": record.jkt or "",
        }
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()

    @staticmethod
    def _indexes(record: _TokenRecord) -> list[str]:
        if record.person_id is None:
            return [key_names.client_tokens(record.client_id)]
        indexes = []
        if record.grant_id:
            indexes.append(key_names.grant_tokens(record.person_id, record.grant_id))
        if record.family:
            indexes.append(key_names.token_family(record.person_id, record.family))
        return indexes

    # ------------------------------------------------------------------ find

    def find_access_token(self, token: str, *, check_links: bool = True) -> AccessTokenRecord | None:
        """The active access token ``token``: None when unknown, expired, revoked or orphaned.

        ``check_links=False`` skips the check that its grant and client still exist, for a
        caller that reads both anyway (introspection): one Redis round trip fewer.
        """
        record = self._load(AccessTokenRecord, key_names.access_token(token_hash(token)), token)
        if record is None or (check_links and not self._alive(record)):
            return None
        return record

    def find_refresh_token(self, token: str) -> RefreshTokenRecord | None:
        """The active refresh token ``token`` (a rotated one is no longer active)."""
        record = self._load(RefreshTokenRecord, key_names.refresh_token(token_hash(token)), token)
        if record is None or record.rotated_at is not None or not self._alive(record):
            return None
        return record

    def lookup_refresh_token(self, token: str) -> RefreshTokenRecord | None:
        """The unexpired record of ``token``, rotated or not (for reuse detection)."""
        return self._load(RefreshTokenRecord, key_names.refresh_token(token_hash(token)), token)

    def rotate_refresh_token(self, record: RefreshTokenRecord) -> RefreshTokenRecord | None:
        """Exchange a refresh token once (RFC 9700 §4.14.2 rotation).

        Returns the record on first use, None when its grant or client is gone, and raises
        :class:`RefreshTokenReused` when it was already exchanged. HSETNX makes two concurrent
        exchanges of one token impossible: exactly one of them wins.
        """
        key = key_names.refresh_token(record.token_hash)
        if record.rotated_at is not None or not self.redis.hsetnx(key, "rotated_at", self.now()):
            raise RefreshTokenReused(record)
        return record if self._alive(record) else None

    def _load(self, cls: type, key: str, token: str) -> Any:
        if not token or len(token) > 512:
            return None
        record = self.cached(key, lambda: self._read(cls, key, token))
        if record is None or record.expires_at <= self.now():
            return None
        return record

    def _read(self, cls: type, key: str, token: str) -> Any:
        data = self.decode(self.redis.hgetall(key))
        if not data:
            return None
        values: dict[str, Any] = {
            "token_hash": token_hash(token),
            "client_id": data["client_id"],
            "person_id": data["person_id"] or None,
            "grant_id": data["grant_id"] or None,
            "scope": data["scope"],
            "issued_at": int(data["issued_at"]),
            "expires_at": int(data["expires_at"]),
            "token_type": data["token_type"],
            "family": data.get("family") or None,
            "auth_time": int(data["auth_time"]) if data.get("auth_time") else None,
            "claims": json.loads(data.get("claims") or "{}"),
            "pairs": pairs_from_json(data.get("pairs")),
            "jkt": data.get("jkt") or None,
        }
        if cls is RefreshTokenRecord:
            values["rotated_at"] = int(data["rotated_at"]) if data.get("rotated_at") else None
        return cls(**values)

    def _alive(self, record: _TokenRecord) -> bool:
        """The grant and the client behind a token still exist."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(key_names.client(record.client_id))
        if record.grant_id and record.person_id:
            pipe.exists(key_names.grant(record.person_id, record.grant_id))
        return all(pipe.execute())

    # ------------------------------------------------------------------ revoke

    def revoke_access_token(self, record: AccessTokenRecord) -> None:
        self.redis.delete(key_names.access_token(record.token_hash))

    def revoke_refresh_token(self, record: RefreshTokenRecord) -> None:
        self.redis.delete(key_names.refresh_token(record.token_hash))

    def revoke_family(self, person_id: str, family: str) -> int:
        """Revoke every token descending from one authorization code (RFC 6749 §4.1.2)."""
        return self._revoke_index(key_names.token_family(person_id, family))

    def revoke_grant_tokens(self, person_id: str, grant_id: str) -> int:
        """Revoke every access and refresh token issued under a grant."""
        return self._revoke_index(key_names.grant_tokens(person_id, grant_id))

    def revoke_client_tokens(self, client_id: str) -> int:
        """Revoke a client's client-credentials tokens."""
        return self._revoke_index(key_names.client_tokens(client_id))

    def _revoke_index(self, index: str) -> int:
        members = [raw.decode() for raw in self.redis.zrange(index, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.delete(member)
        pipe.delete(index)
        pipe.execute()
        return len(members)
