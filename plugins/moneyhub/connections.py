"""What a Moneyhub connection's ``status``/``error``/``expiresAt`` mean for a registration.

Seed 001 ("Connection status", "Connection errors") names the errors; the mapping:

| Moneyhub                                  | registration      | the person must          |
| ----------------------------------------- | ----------------- | ------------------------ |
| ok, expiresAt in the future               | ok                | nothing                  |
| expiresAt passed                          | expired           | renew it (reauth)        |
| resync, mfa_required, credentials_error   | reauth_required   | refresh it               |
| sync_error, sync_partial                  | ok, with a note   | nothing (Moneyhub retries) |
| connection or user gone                   | reauth_required   | connect the bank again   |
| any other error                           | error             | reconnect                |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregator.upstream.contract import StatusReport
from plugins.moneyhub.authorization import Journey

#: seed 001's descriptions, worded for the person
ERRORS: dict[str, str] = {
    "resync": "Moneyhub has not been able to update this connection recently; "
              "reconnect it to refresh it.",
    "mfa_required": "The bank needs you to confirm it is you again; reconnect to refresh it.",
    "credentials_error": "The bank no longer accepts this connection (changed credentials or "
                         "revoked access); reconnect to refresh it.",
    "sync_error": "Moneyhub could not sync this connection lately and will retry; "
                  "data may be out of date.",
    "sync_partial": "Moneyhub could not sync some transactions lately and will retry.",
}
NEEDS_REFRESH = frozenset({"resync", "mfa_required", "credentials_error"})
TRANSIENT = frozenset({"sync_error", "sync_partial"})
GONE = "This connection no longer exists at Moneyhub; connect the bank again."


def expires_at(connection: dict[str, Any]) -> int | None:
    """``expiresAt`` as a Unix time, or None when absent or unreadable."""
    value = connection.get("expiresAt")
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return None


def status_of(connection: dict[str, Any] | None, now: float) -> StatusReport:
    """The registration status for a connection from ``GET /users/:id/connections``."""
    if connection is None:
        return StatusReport("reauth_required", GONE)
    expiry = expires_at(connection)
    error = connection.get("error")
    if expiry is not None and expiry <= now:
        return StatusReport("expired", "The consent given to Moneyhub has expired; "
                                       "reconnect to renew it.", expiry)
    if error in NEEDS_REFRESH:
        return StatusReport("reauth_required", ERRORS[error], expiry)
    if error in TRANSIENT:
        return StatusReport("ok", ERRORS[error], expiry)
    if connection.get("status") not in (None, "ok") or error:
        return StatusReport("error", f"Moneyhub reports a problem with this connection "
                                     f"({str(error or connection.get('status'))[:60]}).", expiry)
    return StatusReport("ok", None, expiry)


def reconnect_journey(connection: dict[str, Any] | None, now: float) -> Journey:
    """Seed 001 "Connection lifecycle": ``refresh`` when the credentials or MFA need the person,
    ``reauth`` otherwise (an expired or expiring consent)."""
    if connection is not None and connection.get("error") in NEEDS_REFRESH:
        expiry = expires_at(connection)
        if expiry is None or expiry > now:
            return "refresh"
    return "reauth"
