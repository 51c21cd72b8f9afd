"""The delivery worker's first stage: outbox facts -> one signed SET per app concerned.

A grant fact concerns the grant's app; an institution fact concerns every app whose grant (as it
is when relayed) covers that registration. An app hears only of the event types its stream
delivers. Each SET is queued by ``EventStreams.queue`` (push, poll, held, or dropped for a
disabled stream), then the fact leaves the outbox. A crash in between relays the fact again,
with the same ``jti``s, and the queue takes each jti once.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from aggregator.events import types
from aggregator.events.sets import sign_set, stable_jti, subject
from aggregator.oauth.authorization_details import granted_details
from aggregator.registry.names import unique_names
from aggregator.services import Services
from aggregator.store.events import Fact

log = logging.getLogger("aggregator.events")


def relay_once(svc: Services, people: int = 200) -> int:
    """Relay the facts of up to ``people`` listed people; returns how many SETs were queued."""
    outbox = svc.store.event_outbox
    queued = 0
    for person_id, score in outbox.people(people):
        facts = outbox.facts(person_id)
        for fact in facts:
            try:
                queued += relay_fact(svc, fact)
            except redis.RedisError:
                raise  # the fact stays; relayed again once Redis answers
            except Exception:  # a fact that cannot be made into SETs must not block the others
                log.exception("outbox fact dropped", extra={"fact_type": fact.data.get("type")})
            outbox.done(fact)
        if not facts:
            outbox.forget_if_drained(person_id, score)
    return queued


def relay_fact(svc: Services, fact: Fact) -> int:
    """Queue the SETs one fact makes; returns how many."""
    kind = fact.data.get("type", "")
    event_name = types.FACT_EVENTS.get(kind)
    if event_name is None:
        log.warning("unknown outbox fact dropped", extra={"fact_type": kind})
        return 0
    event_type = types.event_uri(svc.issuer, event_name)
    queued = 0
    for client_id, grant_id in _audience(svc, fact):
        stream = svc.store.event_streams.get(client_id)
        client = svc.store.clients.get(client_id)
        if stream is None or client is None or event_type not in delivered(svc, stream.events_requested):
            continue
        payload = _payload(svc, fact, grant_id)
        if payload is None:
            continue
        jti = stable_jti(fact.person_id, fact.entry_id, client_id, grant_id)
        signed = sign_set(svc, audience=client_id, jti=jti,
                          sub_id=subject(svc, client, fact.person_id, grant_id),
                          event_type=event_type, payload=payload, txn=fact.entry_id)
        outcome = svc.store.event_streams.queue(client_id, jti, signed)
        if outcome in ("push", "poll", "held"):
            svc.metrics.set_queued(outcome)
            queued += 1
    return queued


def delivered(svc: Services, requested: list[str]) -> list[str]:
    """SSF 1.0 §8.1.1 ``events_delivered``: the requested types we support (all when none
    were asked for)."""
    supported = types.events_supported(svc.issuer)
    return [t for t in requested if t in supported] if requested else supported


def _audience(svc: Services, fact: Fact) -> list[tuple[str, str]]:
    """(client id, grant id) of every app the fact concerns."""
    data = fact.data
    if "client_id" in data:
        return [(data["client_id"], data["grant_id"])]
    registration_id = data.get("registration_id")
    return [(grant.client_id, grant.id) for grant in svc.store.grants.for_person(fact.person_id)
            if registration_id in grant.registration_ids]


def _payload(svc: Services, fact: Fact, grant_id: str) -> dict[str, Any] | None:
    """The event's members (documented in docs/api.md "Events"); None when nothing is left to say."""
    data = fact.data
    payload: dict[str, Any] = {"event_timestamp": data.get("at"), "grant_id": grant_id}
    kind = data["type"]
    if kind == "grant_revoked":  # CAEP 1.0 §3.1 members
        payload.update(initiating_entity="user",
                       reason_admin={"en": "The person revoked this app's access on their dashboard."})
        return payload
    if kind == "grant_changed":
        grant = svc.store.grants.get_for(fact.person_id, grant_id)
        if grant is None:
            return None  # revoked since: that event says it
        names = unique_names(svc.store.registrations.list(fact.person_id))
        payload["authorization_details"] = granted_details(grant.pairs, names)
        return payload
    if kind == "payment_status":
        payload.update(payment_id=data["payment_id"], status=data["status"])
        return payload
    record = svc.store.registrations.get(fact.person_id, data["registration_id"])
    if record is None:
        return None  # removed since: the app's introspection no longer lists it
    names = unique_names(svc.store.registrations.list(fact.person_id))
    payload.update(registration_id=record.id, institution=names.get(record.id, record.institution_name))
    if kind == "registration_status":
        payload.update(status=data["status"], previous_status=data.get("previous", "ok"))
    return payload
