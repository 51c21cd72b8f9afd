"""The scopes an app can ask for, what they mean to a person, and parsing them (RFC 6749 §3.3)."""

from __future__ import annotations

import re

from aggregator.errors import InvalidScope
from aggregator.upstream.contract import DATA_SCOPES

OPENID = "openid"
OFFLINE_ACCESS = "offline_access"
#: pay the app once, as the ``payment_initiation`` authorization detail says (never reads data)
PAYMENTS = "payments"
#: the app's own scope, by client credentials only: managing its event stream (aggregator/events)
EVENTS = "events"

#: every scope, in the order discovery lists them and the consent page explains them
SCOPES_SUPPORTED: tuple[str, ...] = (OPENID, OFFLINE_ACCESS, "accounts:read", "balances:read",
                                     "transactions:read", PAYMENTS, EVENTS)

#: what the consent page says for each scope
DESCRIPTIONS: dict[str, str] = {
    OPENID: "Know that it is you (a private identifier for you at this app; never your password)",
    OFFLINE_ACCESS: "Keep this access while you are away, until you revoke it",
    "accounts:read": "See your accounts: their names, types and numbers",
    "balances:read": "See your account balances",
    "transactions:read": "See your transactions: amounts, dates and descriptions",
    PAYMENTS: "Ask you to make one payment to it, which you approve at your bank",
    EVENTS: "Receive events about the access you gave it",
}

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Split a scope string into unique, supported scope tokens (order kept)."""
    if not value:
        return ()
    tokens = tuple(dict.fromkeys(value.split(" ")))
    tokens = tuple(token for token in tokens if token)
    for token in tokens:
        if not _SCOPE_TOKEN.match(token):
            raise InvalidScope("The scope contains characters RFC 6749 §3.3 does not allow.")
        if token not in SCOPES_SUPPORTED:
            raise InvalidScope(f"Unknown scope {token!r}.")
    return tokens


def data_scopes(scopes: tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The data scopes among ``scopes`` (those that reach the person's institutions)."""
    return frozenset(scopes) & DATA_SCOPES


def join(scopes: tuple[str, ...] | list[str]) -> str:
    return " ".join(scopes)
