"""The event types this transmitter sends (SSF 1.0 §7.1 ``events_supported``).

Our own types are URIs under the issuer; a grant the person revoked is CAEP's
``session-revoked`` (the grant is the "session" between the person and the app, see
``sets.subject``). Every SET carries exactly one event (SSF 1.0 §4.1).
"""

from __future__ import annotations

from aggregator.store.events import POLL

#: RFC 8935 push and RFC 8936 poll delivery (SSF 1.0 §6.1)
PUSH = "urn:ietf:rfc:8935"
DELIVERY_METHODS = (PUSH, POLL)

#: OpenID CAEP 1.0 §3.1: the person revoked the app's grant on their dashboard
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
#: SSF 1.0 §8.1.4: the answer to a verification request
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"

#: our own types, by short name: the URI is ``{issuer}/events/<name>``
GRANT_CHANGED = "grant-changed"
INSTITUTION_STATUS_CHANGED = "institution-status-changed"
NEW_DATA_AVAILABLE = "new-data-available"
PAYMENT_STATUS_CHANGED = "payment-status-changed"
OWN_TYPES = (GRANT_CHANGED, INSTITUTION_STATUS_CHANGED, NEW_DATA_AVAILABLE, PAYMENT_STATUS_CHANGED)

#: the outbox fact type -> the event type it becomes
FACT_EVENTS = {
    "grant_revoked": SESSION_REVOKED,
    "grant_changed": GRANT_CHANGED,
    "registration_status": INSTITUTION_STATUS_CHANGED,
    "new_data": NEW_DATA_AVAILABLE,
    "payment_status": PAYMENT_STATUS_CHANGED,
}


def event_uri(issuer: str, name: str) -> str:
    """The full URI of an event type (ours are under the issuer; others are URIs already)."""
    return name if name.startswith("https://") else f"{issuer}/events/{name}"


def events_supported(issuer: str) -> list[str]:
    """Every type a stream can ask for (verification events are sent whatever it asks)."""
    return [SESSION_REVOKED] + [event_uri(issuer, name) for name in OWN_TYPES]
