"""Audit events: which app received which of a person's upstream tokens, and when.

Each event goes to two capped Redis streams: the person's own (in their hash slot, so it is
erased with them) and a global one for operators. Events name registrations and institutions,
never token values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aggregator.store import key_names
from aggregator.store.audit_batch import AuditBatch
from aggregator.store.base import Repository

#: newest events kept per person, and in the operators' stream (approximate trimming)
PERSON_CAP = 500
GLOBAL_CAP = 10_000


@dataclass(frozen=True)
class AuditEvent:
    """One release of upstream tokens to an app (``kind`` release), the person's change to
    what an app may read (``kind`` consent_edited), or a payment the person made to an app
    (``kind`` payment, from the one registration named); ``detail`` in plain words."""

    at: int
    client_id: str
    client_name: str
    person_id: str
    #: (registration id, institution name) of every token released
    registrations: tuple[tuple[str, str], ...]
    request_id: str | None = None
    #: the stream entry id (empty before the event is stored)
    id: str = ""
    kind: str = "release"
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "at": self.at,
            "client_id": self.client_id,
            "client_name": self.client_name,
            "person_id": self.person_id,
            "registrations": [{"id": rid, "institution": name} for rid, name in self.registrations],
            "request_id": self.request_id,
            "kind": self.kind,
            "detail": self.detail,
        }


class AuditRepository(Repository):
    """Append-only, capped streams: ``audit:{u:<person>}`` and ``audit:all``."""

    @cached_property
    def batch(self) -> AuditBatch:
        """Events written a few milliseconds later, many per round trip (:mod:`.audit_batch`)."""
        return AuditBatch(self.append_many)

    def append_later(self, event: AuditEvent) -> None:
        """Queue ``event`` for the next batch (the introspection path does not wait for Redis)."""
        self.batch.add(event)

    def append(self, event: AuditEvent) -> None:
        self.append_many([event])

    def append_many(self, events: Sequence[AuditEvent]) -> None:
        # Two slots per event (the person's and the global one), so no MULTI: one round trip,
        # no atomicity needed between independent logs.
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            self._add(pipe, event)
        pipe.execute()

    @staticmethod
    def _add(pipe: Any, event: AuditEvent) -> None:
        fields = {
            "at": event.at,
            "client_id": event.client_id,
            "client_name": event.client_name,
            "person_id": event.person_id,
            "registrations": json.dumps([list(pair) for pair in event.registrations],
                                        separators=(",", ":")),
            "request_id": event.request_id or "",
            "kind": event.kind,
            "detail": event.detail,
        }
        pipe.xadd(key_names.audit_person(event.person_id), fields, maxlen=PERSON_CAP, approximate=True)
        pipe.xadd(key_names.AUDIT_ALL, fields, maxlen=GLOBAL_CAP, approximate=True)

    def for_person(self, person_id: str, limit: int = 20) -> list[AuditEvent]:
        """The person's newest events first."""
        return self._read(key_names.audit_person(person_id), limit)

    def recent(self, limit: int = 20) -> list[AuditEvent]:
        """Everyone's newest events first (the operators' stream)."""
        return self._read(key_names.AUDIT_ALL, limit)

    def _read(self, key: str, limit: int) -> list[AuditEvent]:
        self.batch.flush()  # this process's queued events first: a reader sees its own writes
        entries = self.redis.xrevrange(key, count=max(1, limit))
        return [self._event(entry_id, self.decode(data)) for entry_id, data in entries]

    @staticmethod
    def _event(entry_id: bytes | str, data: dict[str, str]) -> AuditEvent:
        pairs = json.loads(data.get("registrations") or "[]")
        return AuditEvent(
            at=int(data["at"]),
            client_id=data["client_id"],
            client_name=data.get("client_name", ""),
            person_id=data["person_id"],
            registrations=tuple((rid, name) for rid, name in pairs),
            request_id=data.get("request_id") or None,
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            kind=data.get("kind") or "release",
            detail=data.get("detail", ""),
        )
