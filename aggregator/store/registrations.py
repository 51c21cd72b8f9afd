"""Registrations: a person's linked institutions, their encrypted upstream grants and tokens.

The upstream grant (refresh token and the like) is one encrypted blob on the registration.
Cached upstream access tokens live beside it, encrypted, one per scope set, expiring with the
token. Every multi-key write is one MULTI/EXEC in the person's hash slot.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aggregator.store import key_names
from aggregator.store.base import Repository
from aggregator.store.events import announce, execute_with_fact
from aggregator.upstream.contract import (
    DATA_SCOPES,
    Institution,
    LinkedInstitution,
    Person,
    Registration,
    UpstreamToken,
)

STATUSES = ("ok", "reauth_required", "expired", "error")

#: the scope set a link's first token was issued for (the widest the person allowed)
FULL_SCOPE_KEY = "*"


def scope_key(scopes: frozenset[str]) -> str:
    """The key segment of a cached token's data-scope set (``*`` when all are asked)."""
    return FULL_SCOPE_KEY if scopes >= DATA_SCOPES else "+".join(sorted(scopes)) or "-"


@dataclass(frozen=True)
class RegistrationRecord:
    id: str
    person_id: str
    provider: str
    institution_id: str
    institution_name: str
    external_id: str
    endpoint: str
    status: str
    created_at: int
    updated_at: int
    icon_url: str | None = None
    error: str | None = None
    consent_expires_at: int | None = None
    share_group: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class RegistrationRepository(Repository):
    def _secrets_aad(self, person_id: str, registration_id: str) -> str:
        return key_names.registration(person_id, registration_id) + ":secrets"

    def _token_aad(self, person_id: str, registration_id: str, key: str) -> str:
        return key_names.upstream_token(person_id, registration_id, key)

    # ------------------------------------------------------------------ reads

    def get(self, person_id: str, registration_id: str) -> RegistrationRecord | None:
        data = self.decode(self.redis.hgetall(key_names.registration(person_id, registration_id)))
        return self._record(data) if data else None

    def list(self, person_id: str) -> list[RegistrationRecord]:
        keys: list[str] = []  # each registration read: a change to any drops the list

        def load() -> list[RegistrationRecord]:
            ids = [raw.decode() for raw in self.redis.smembers(key_names.registrations(person_id))]
            keys[:] = [key_names.registration(person_id, rid) for rid in ids]
            if not ids:
                return []
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            records = [self._record(self.decode(data)) for data in pipe.execute() if data]
            return sorted(records, key=lambda r: (r.created_at, r.institution_name))

        return list(self.cached(key_names.registrations(person_id), load, lambda _: keys) or [])

    def find_external(self, person_id: str, provider: str, external_id: str) -> str | None:
        found = self.redis.get(key_names.registration_by_external(person_id, provider, external_id))
        return found.decode() if found else None

    def secrets(self, record: RegistrationRecord) -> dict[str, Any]:
        blob = self.redis.hget(key_names.registration(record.person_id, record.id), "secrets")
        if not blob:
            return {}
        return self.keyring.decrypt_json(blob.decode(), self._secrets_aad(record.person_id, record.id))

    def cached_token(self, person_id: str, registration_id: str,
                     scopes: frozenset[str]) -> UpstreamToken | None:
        """The cached upstream token for these data scopes, if any."""
        return self.cached_tokens(person_id, [(registration_id, scopes)])[registration_id]

    def cached_tokens(self, person_id: str, wanted: Iterable[tuple[str, frozenset[str]]],
                      ) -> dict[str, UpstreamToken | None]:
        """Registration id -> its cached upstream token for those data scopes (None: none),
        all read in one round trip (one hash slot: the person's)."""
        names = {key_names.upstream_token(person_id, rid, scope_key(scopes)): (rid, scope_key(scopes))
                 for rid, scopes in wanted}

        def load(missing: list[str]) -> dict[str, UpstreamToken | None]:
            pipe = self.redis.pipeline(transaction=False)
            for name in missing:
                pipe.get(name)
            return {name: self._token(person_id, *names[name], blob)
                    for name, blob in zip(missing, pipe.execute(), strict=True)}

        return {names[name][0]: token for name, token in self.cached_many(list(names), load).items()}

    def _token(self, person_id: str, registration_id: str, key: str,
               blob: bytes | None) -> UpstreamToken | None:
        if not blob:
            return None
        return UpstreamToken(**self.keyring.decrypt_json(blob.decode(), self._token_aad(
            person_id, registration_id, key)))

    def plugin_view(self, record: RegistrationRecord, person: Person) -> Registration:
        """The registration as its plugin sees it: secrets decrypted, only when a plugin acts."""
        return Registration(
            id=record.id,
            person=person,
            provider=record.provider,
            institution=Institution(record.institution_id, record.institution_name, record.icon_url),
            external_id=record.external_id,
            endpoint=record.endpoint,
            secrets=self.secrets(record),
            metadata=record.metadata,
            consent_expires_at=record.consent_expires_at,
            share_group=record.share_group,
            status=record.status,  # type: ignore[arg-type]
            error=record.error,
        )

    # ------------------------------------------------------------------ writes

    def save_linked(self, person_id: str, provider: str, linked: LinkedInstitution, *,
                    registration_id: str | None = None) -> RegistrationRecord:
        """Store what a completed link produced: a new registration, or an update of
        ``registration_id`` (a reconnect or a relink).

        The record, its secrets, the external-id index and the first cached token are written
        in one transaction: a crash leaves either all of them or none.
        """
        now = self.now()
        existing = self.get(person_id, registration_id) if registration_id else None
        rid = existing.id if existing else secrets.token_urlsafe(12)
        key = key_names.registration(person_id, rid)
        mapping = {
            "id": rid,
            "person_id": person_id,
            "provider": provider,
            "institution_id": linked.institution.id,
            "institution_name": linked.institution.name,
            "icon_url": linked.institution.icon_url or "",
            "external_id": linked.external_id,
            "endpoint": linked.endpoint,
            "status": "ok",
            "error": "",
            "consent_expires_at": linked.consent_expires_at or "",
            "share_group": linked.share_group or "",
            "metadata": json.dumps(linked.metadata, separators=(",", ":")),
            "secrets": self.keyring.encrypt_json(linked.secrets, self._secrets_aad(person_id, rid)),
            "created_at": existing.created_at if existing else now,
            "updated_at": now,
        }
        # reconnected: apps hear the institution is ok again, with the change itself
        reconnected = None if existing is None or existing.status == "ok" else {
            "type": "registration_status", "registration_id": rid, "status": "ok",
            "previous": existing.status, "at": now}
        pipe = self.redis.pipeline(transaction=True)
        if existing and existing.external_id != linked.external_id:
            pipe.delete(key_names.registration_by_external(person_id, provider, existing.external_id))
        self._drop_tokens(pipe, person_id, rid)
        pipe.hset(key, mapping=mapping)
        pipe.sadd(key_names.registrations(person_id), rid)
        pipe.set(key_names.registration_by_external(person_id, provider, linked.external_id), rid)
        if linked.token is not None:
            self._put_token(pipe, person_id, rid, FULL_SCOPE_KEY, linked.token)
        execute_with_fact(self.redis, pipe, person_id, reconnected)
        self.replicated(person_id, "linked registration")
        return self.get(person_id, rid)  # type: ignore[return-value]

    def store_refreshed(
        self,
        record: RegistrationRecord,
        scopes: frozenset[str],
        token: UpstreamToken,
        secrets_value: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        """Persist a refresh's outcome atomically: rotated secrets first-class, then the token.

        Called before the new access token is handed to anyone, so a rotated refresh token is
        never lost (the upstream has already invalidated the old one).
        """
        key = key_names.registration(record.person_id, record.id)
        pipe = self.redis.pipeline(transaction=True)
        update: dict[str, Any] = {"status": "ok", "error": "", "updated_at": self.now()}
        if secrets_value is not None:
            update["secrets"] = self.keyring.encrypt_json(
                secrets_value, self._secrets_aad(record.person_id, record.id)
            )
        if metadata is not None:
            update["metadata"] = json.dumps(metadata, separators=(",", ":"))
            if isinstance(metadata.get("endpoint"), str):  # the upstream moved the API base
                update["endpoint"] = metadata["endpoint"]
        self._update_if_exists(pipe, key, update)
        self._put_token(pipe, record.person_id, record.id, scope_key(scopes), token)
        still_there = pipe.execute()[0]
        self.replicated(record.person_id, "refreshed registration")
        if not still_there:  # removed while the refresh ran: leave no token of it behind
            cleanup = self.redis.pipeline(transaction=True)
            self._drop_tokens(cleanup, record.person_id, record.id)
            cleanup.execute()

    def set_status(
        self,
        record: RegistrationRecord,
        status: str,
        error: str | None = None,
        consent_expires_at: int | None = None,
    ) -> None:
        """Set the registration's status; a change of status is a fact for the apps whose grant
        covers the registration, written in the same transaction (see ``store/events.py``)."""
        if status not in STATUSES:
            raise ValueError(f"unknown registration status {status!r}")
        update: dict[str, Any] = {"status": status, "error": error or "", "updated_at": self.now()}
        if consent_expires_at is not None:
            update["consent_expires_at"] = consent_expires_at
        fact = {"type": "registration_status", "registration_id": record.id, "status": status,
                "at": self.now()}
        likely_change = record.status != status  # the record may be stale: the script decides
        if likely_change:
            announce(self.redis, record.person_id)
        pipe = self.redis.pipeline(transaction=True)
        flat: list[Any] = [json.dumps(fact, separators=(",", ":"))]
        for name, value in update.items():
            flat += [name, value]
        pipe.execute_command("EVAL", self._SET_STATUS, 2,
                             key_names.registration(record.person_id, record.id),
                             key_names.event_outbox(record.person_id), *flat)
        if status != "ok":
            self._drop_tokens(pipe, record.person_id, record.id)
        if pipe.execute()[0] == 2 or likely_change:
            announce(self.redis, record.person_id)

    # KEYS[1] the gate, then the cached tokens: all dropped only by the report that sets the gate
    _DROP_REJECTED = """
    if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
    for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
    return 1
    """

    def drop_rejected(self, person_id: str, registration_id: str, interval: int) -> bool:
        """An app reported the registration's upstream token refused: drop its cached tokens,
        unless a report did so in the last ``interval`` seconds (then the cache already holds
        the tokens fetched since). True when this call dropped them.

        Gate and drop are one script, so a report that finds the gate set never reads a token
        that the gate's setter is about to drop.
        """
        index = key_names.upstream_tokens(person_id, registration_id)
        cached = [key_names.upstream_token(person_id, registration_id, raw.decode())
                  for raw in self.redis.smembers(index)]
        keys = [key_names.upstream_token_rejected(person_id, registration_id), index, *cached]
        return bool(self.redis.execute_command("EVAL", self._DROP_REJECTED, len(keys), *keys, interval))

    def delete(self, record: RegistrationRecord) -> None:
        pipe = self.redis.pipeline(transaction=True)
        self._drop_tokens(pipe, record.person_id, record.id)
        pipe.delete(key_names.registration(record.person_id, record.id))
        pipe.delete(key_names.registration_by_external(record.person_id, record.provider,
                                                  record.external_id))
        pipe.srem(key_names.registrations(record.person_id), record.id)
        pipe.execute()

    # ------------------------------------------------------------------ helpers

    # A registration removed while a refresh was in flight must stay removed.
    _UPDATE_IF_EXISTS = """
    if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
    redis.call('HSET', KEYS[1], unpack(ARGV))
    return 1
    """

    # The status and, when it changes, its fact in the person's outbox (the previous status is
    # added to the fact here, where it is read atomically): 0 gone, 1 unchanged, 2 changed.
    _SET_STATUS = """
    if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
    local previous = redis.call('HGET', KEYS[1], 'status') or 'ok'
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    if previous ~= ARGV[3] then
        local fact = cjson.decode(ARGV[1])
        fact.previous = previous
        redis.call('XADD', KEYS[2], '*', 'fact', cjson.encode(fact))
        return 2
    end
    return 1
    """

    def _update_if_exists(self, pipe: Any, key: str, update: dict[str, Any]) -> None:
        flat: list[Any] = []
        for name, value in update.items():
            flat += [name, value]
        pipe.execute_command("EVAL", self._UPDATE_IF_EXISTS, 1, key, *flat)  # ClusterPipeline has no eval()

    def _put_token(self, pipe: Any, person_id: str, rid: str, key: str,
                   token: UpstreamToken) -> None:
        ttl = token.expires_at - self.now()
        if ttl <= 0:
            return
        blob = self.keyring.encrypt_json(asdict(token), self._token_aad(person_id, rid, key))
        pipe.set(key_names.upstream_token(person_id, rid, key), blob, ex=ttl)
        pipe.sadd(key_names.upstream_tokens(person_id, rid), key)

    def _drop_tokens(self, pipe: Any, person_id: str, rid: str) -> None:
        cached = [raw.decode() for raw in self.redis.smembers(key_names.upstream_tokens(person_id, rid))]
        for key in cached:
            pipe.delete(key_names.upstream_token(person_id, rid, key))
        pipe.delete(key_names.upstream_tokens(person_id, rid))

    @staticmethod
    def _record(data: dict[str, str]) -> RegistrationRecord:
        return RegistrationRecord(
            id=data["id"],
            person_id=data["person_id"],
            provider=data["provider"],
            institution_id=data["institution_id"],
            institution_name=data["institution_name"],
            external_id=data["external_id"],
            endpoint=data["endpoint"],
            status=data.get("status") or "ok",
            created_at=int(data["created_at"]),
            updated_at=int(data["updated_at"]),
            icon_url=data.get("icon_url") or None,
            error=data.get("error") or None,
            consent_expires_at=int(data["consent_expires_at"]) if data.get("consent_expires_at")
            else None,
            share_group=data.get("share_group") or None,
            metadata=json.loads(data.get("metadata") or "{}"),
        )
