"""``GET /payments/{payment_id}``: a payment made to the app, read as its steps:

1. no caching of the answer                                  RFC 6749 §5.1
2. the app's access token with the ``payments`` scope, its DPoP proof when bound
                                                             RFC 6750 §2.1, §3.1; RFC 9449 §7
3. the payment, only to the client it was made to (to any other: 404, as if unknown)
4. while pending, the upstream's current status
5. answer ``{id, status, instructedAmount, creditorName, institution, created_at, updated_at}``
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from aggregator.crypto import constant_time_equals
from aggregator.errors import NotFound
from aggregator.events.facts import payment_status_changed
from aggregator.oauth.blueprints import api
from aggregator.oauth.payment_initiation import instructed_amount
from aggregator.oauth.resource import access_token_for
from aggregator.oauth.scopes import PAYMENTS
from aggregator.security import no_store
from aggregator.services import Services, services
from aggregator.store.payments import PaymentRecord
from aggregator.upstream.contract import PaymentsCapability, UpstreamError

_MAX_ID = 100


@api.get("/payments/<payment_id>")
def read_payment(payment_id: str):
    no_store()
    svc = services()
    token = access_token_for(svc, svc.endpoints.payment(payment_id), scope=PAYMENTS)
    record = svc.store.payments.get(payment_id) if len(payment_id) <= _MAX_ID else None
    if record is None or not constant_time_equals(record.client_id, token.client_id):
        raise NotFound("There is no such payment to this app.")
    if record.status == "pending":
        record = _refreshed(svc, record, token.grant_id)
    return jsonify(payment_json(record))


def _refreshed(svc: Services, record: PaymentRecord, grant_id: str | None) -> PaymentRecord:
    """The upstream's view of a pending payment; the stored one when it cannot be asked. A new
    status is also an event to the app (``payment-status-changed``), with the grant of the token
    that asked."""
    plugin = svc.plugins.get(record.provider)
    registration = svc.store.registrations.get(record.person_id, record.registration_id)
    person = svc.store.people.get(record.person_id)
    if not isinstance(plugin, PaymentsCapability) or registration is None or person is None:
        return record
    view = svc.store.registrations.plugin_view(registration, person.as_person())
    try:
        result = plugin.payment_status(view, record.upstream_id)
    except UpstreamError:
        return record  # the app reads "pending" and asks again later
    fact = None if grant_id is None else payment_status_changed(
        client_id=record.client_id, grant_id=grant_id, payment_id=record.id, status=result.status)
    return svc.store.payments.set_status(record, result.status, result.error, fact=fact)


def payment_json(record: PaymentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status,
        "instructedAmount": instructed_amount(record.payment),
        "creditorName": record.payment.creditor_name,
        "institution": record.institution,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
