"""The upstream's answer to a payment authorization, at the same callback URL as links
(``/connections/callback/<provider>``): told apart by its ``state``.

Read as its steps: take what was stored under the state (single use), check it belongs to
this person, browser session and provider, let the plugin complete the payment, record the
payment (and audit it), then end the app's authorization request: a code whose tokens carry
the payment, or ``access_denied`` / a clear error (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Response

from aggregator.crypto import constant_time_equals
from aggregator.errors import (
    AccessDenied,
    InvalidRequest,
    ProtocolError,
    TemporarilyUnavailable,
    UpstreamFailed,
)
from aggregator.introspection.audit import record_payment
from aggregator.oauth import pending as pending_requests
from aggregator.oauth.authorization_request import AuthorizationRequest
from aggregator.oauth.authorize import finish_payment
from aggregator.services import Services
from aggregator.store.payments import PaymentRecord
from aggregator.store.people import PersonRecord
from aggregator.upstream.contract import (
    PaymentDenied,
    PaymentsCapability,
    UpstreamError,
    UpstreamUnavailable,
)

log = logging.getLogger("aggregator.payments")


def complete_payment(svc: Services, person: PersonRecord, binding: str, provider: str,
                     params: Mapping[str, str]) -> Response | None:
    """Finish the payment this callback answers; None when its state is not a payment's."""
    state = params.get("state", "")
    if not state or len(state) > 512:
        return None
    waiting = svc.store.payments.take_waiting(state)
    if waiting is None:
        return None
    if (waiting["provider"] != provider or waiting["person_id"] != person.id
            or not constant_time_equals(waiting["binding"], binding)):
        raise InvalidRequest("This payment belongs to another session. Go back to the app and "
                             "start again.")
    pending = pending_requests.load(svc, waiting["pending_id"])
    return finish_payment(svc, pending, person,
                          _made(svc, person, waiting, pending.authorization, params))


def _made(svc: Services, person: PersonRecord, waiting: Mapping[str, Any],
          authorization: AuthorizationRequest, params: Mapping[str, str]
          ) -> PaymentRecord | ProtocolError:
    """The payment as the upstream made it, recorded; or the error for the app."""
    record = svc.store.registrations.get(person.id, waiting["registration_id"])
    plugin = svc.plugins.get(waiting["provider"])
    if record is None or not isinstance(plugin, PaymentsCapability):
        return UpstreamFailed("The institution chosen to pay was removed meanwhile.")
    assert authorization.payment is not None
    view = svc.store.registrations.plugin_view(record, person.as_person())
    try:
        result = plugin.complete_payment(view, params, waiting["remember"])
    except PaymentDenied as exc:
        return AccessDenied(f"The payment was not authorized at the bank: {exc.description}")
    except UpstreamUnavailable as exc:
        return TemporarilyUnavailable(exc.description)
    except UpstreamError as exc:
        return UpstreamFailed(exc.description)
    made = svc.store.payments.create(
        client_id=authorization.client_id, person_id=person.id, registration_id=record.id,
        provider=record.provider, institution=waiting["institution"],
        upstream_id=result.payment_id, payment=authorization.payment, status=result.status,
        error=result.error)
    client = svc.store.clients.get(authorization.client_id)
    record_payment(made, client.display_name if client is not None else "")
    log.info("payment made", extra={"provider": record.provider, "person_id": person.id,
                                    "payment_id": made.id, "status": made.status})
    if made.status in ("rejected", "failed"):
        return AccessDenied(f"The bank did not make the payment: {made.error or made.status}.")
    return made
