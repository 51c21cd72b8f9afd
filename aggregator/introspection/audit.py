"""Who received which of a person's upstream tokens: recorded per release, read by people
(dashboard) and operators (``aggregator audit``). Token values are never recorded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from flask import g, has_request_context

from aggregator.services import services
from aggregator.store.audit import AuditEvent
from aggregator.store.payments import PaymentRecord


def record_release(
    client_id: str, client_name: str, person_id: str, released: Sequence[tuple[str, str]]
) -> AuditEvent | None:
    """Log that ``client_id`` received tokens for ``released`` (registration id, name) pairs."""
    if not released:
        return None
    event = AuditEvent(
        at=int(time.time()),
        client_id=client_id,
        client_name=client_name,
        person_id=person_id,
        registrations=tuple(released),
        request_id=getattr(g, "request_id", None) if has_request_context() else None,
    )
    services().store.audit.append_later(event)  # batched: see aggregator.store.audit_batch
    return event


def record_edit(client_id: str, client_name: str, person_id: str, detail: str) -> AuditEvent:
    """Log that the person changed what ``client_id`` may read (``detail``: plain words)."""
    event = AuditEvent(
        at=int(time.time()), client_id=client_id, client_name=client_name, person_id=person_id,
        registrations=(), request_id=getattr(g, "request_id", None) if has_request_context() else None,
        kind="consent_edited", detail=detail,
    )
    services().store.audit.append(event)
    return event


def record_payment(payment: PaymentRecord, client_name: str) -> AuditEvent:
    """Log a payment the person made to ``payment.client_id`` (``detail``: plain words)."""
    detail = (f"{payment.payment.amount} {payment.payment.currency} to "
              f"{payment.payment.creditor_name}, reference {payment.payment.reference}; "
              f"the bank said {payment.status}")
    event = AuditEvent(
        at=int(time.time()), client_id=payment.client_id, client_name=client_name,
        person_id=payment.person_id, registrations=((payment.registration_id, payment.institution),),
        request_id=getattr(g, "request_id", None) if has_request_context() else None,
        kind="payment", detail=detail,
    )
    services().store.audit.append(event)
    return event


def describe(event: AuditEvent) -> str:
    """"Grapher read Bank of Astoria and Monami Card at 2026-11-22 10:31 UTC"."""
    when = datetime.fromtimestamp(event.at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    app = event.client_name or event.client_id
    if event.kind == "consent_edited":
        return f"You changed what {app} can read ({event.detail}) at {when}"
    if event.kind == "payment":
        paid_from = event.registrations[0][1] if event.registrations else "your bank"
        return f"You paid {app} from {paid_from} ({event.detail}) at {when}"
    names = [name for _, name in event.registrations]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{app} read {listed} at {when}"


def recent_activity(person_id: str, limit: int = 20) -> list[str]:
    """The person's latest releases, newest first, as sentences for the dashboard."""
    return [describe(event) for event in services().store.audit.for_person(person_id, limit)]
