"""The payment consent page and what the person's choice starts.

The page states the payment plainly and offers one radio button per registration that can
make it: its plugin has the payments capability, the registration is usable, and the plugin's
``check_payment`` accepts this payment (an upstream's own limits). On allow, what the
upstream's callback will need is stored under a fresh ``state`` (bound to the person and their
browser session) and the browser goes to the upstream's payment authorization. Nothing leaves
the process for a payment the person did not choose to make.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Response, redirect, render_template, session, url_for

from aggregator.crypto import new_token
from aggregator.oauth import pending as pending_requests
from aggregator.oauth.claims import asked_claims
from aggregator.oauth.consent import claim_lines
from aggregator.oauth.payment_initiation import sentence
from aggregator.oauth.pending import Pending
from aggregator.registry.linking import session_binding
from aggregator.registry.names import unique_names
from aggregator.services import Services
from aggregator.store.clients import ClientRecord
from aggregator.store.people import PersonRecord
from aggregator.store.registrations import RegistrationRecord
from aggregator.upstream.contract import (
    InvalidPaymentRequest,
    PaymentRequest,
    PaymentsCapability,
    UpstreamError,
    supports_payments,
)


@dataclass(frozen=True)
class Payers:
    """Who can make a payment: the registrations offered, and why the others are not."""

    offered: tuple[RegistrationRecord, ...]
    refused: tuple[tuple[RegistrationRecord, str], ...]
    names: dict[str, str]


def payers(svc: Services, person: PersonRecord, payment: PaymentRequest) -> Payers:
    """The person's registrations that can make ``payment`` (checked before anything is sent)."""
    registrations = svc.store.registrations.list(person.id)
    offered, refused = [], []
    for record in registrations:
        plugin = svc.plugins.get(record.provider)
        if plugin is None or not supports_payments(plugin):
            continue  # not offered for payments at all
        assert isinstance(plugin, PaymentsCapability)
        if record.status != "ok":
            refused.append((record, "reconnect it first"))
            continue
        try:
            plugin.check_payment(payment, svc.store.registrations.plugin_view(
                record, person.as_person()))
        except InvalidPaymentRequest as exc:
            refused.append((record, exc.description))
            continue
        offered.append(record)
    return Payers(tuple(offered), tuple(refused), unique_names(registrations))


def payment_page(svc: Services, client: ClientRecord, pending: Pending, person: PersonRecord, *,
                 error: str | None = None, chosen: str | None = None, status: int = 200) -> Response:
    authorization = pending.authorization
    assert authorization.payment is not None
    found = payers(svc, person, authorization.payment)
    continue_url = pending_requests.continue_url(pending)
    html = render_template(
        "oauth_payment_consent.html",
        client=client,
        redirect_host=urlsplit(authorization.redirect_uri).netloc,
        sentence=sentence(authorization.payment),
        debtor_reference=authorization.payment.debtor_reference,
        claims=claim_lines(asked_claims(authorization.claims)),
        offered=found.offered,
        refused=[{"name": found.names[record.id], "reason": reason} for record, reason in found.refused],
        names=found.names,
        chosen=chosen,
        error=error,
        provider_names={name: plugin.display_name for name, plugin in svc.plugins.items()},
        action=continue_url,
        connect_url=url_for("registry.new_connection", next=continue_url),
    )
    return Response(html, status)


def begin_payment(svc: Services, client: ClientRecord, pending: Pending, person: PersonRecord,
                  ticked: list[str]) -> Response:
    """Send the person to the chosen registration's upstream to approve the payment."""
    payment = pending.authorization.payment
    assert payment is not None
    found = payers(svc, person, payment)
    chosen = ticked[0] if len(ticked) == 1 else ""  # one radio button; a forged form may send more
    record = next((r for r in found.offered if r.id == chosen), None)
    if record is None:
        return payment_page(svc, client, pending, person, status=400,
                            error="Choose one of the listed institutions to pay from.")
    plugin = svc.plugins[record.provider]
    assert isinstance(plugin, PaymentsCapability)
    state = new_token()
    view = svc.store.registrations.plugin_view(record, person.as_person())
    try:
        start = plugin.begin_payment(view, payment, state=state)
    except UpstreamError as exc:
        return payment_page(svc, client, pending, person, chosen=chosen, status=502,
                            error=f"{found.names[record.id]} could not start the payment: "
                                  f"{exc.description}")
    svc.store.payments.wait(state, {
        "pending_id": pending.id,
        "person_id": person.id,
        "binding": session_binding(session),
        "provider": record.provider,
        "registration_id": record.id,
        "institution": found.names[record.id],
        "remember": start.remember,
    })
    return redirect(start.redirect_url, code=303)
