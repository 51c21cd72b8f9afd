"""The records the fake keeps in memory: users, connections, requests, codes and tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .catalog import Bank
from .ledger import Ledger, iso

Journey = Literal["connect", "reauth", "refresh", "payment"]


@dataclass
class User:
    """A Moneyhub user profile created by an API client (``POST /users``)."""

    user_id: str
    client_id: str
    client_user_id: str | None
    created_at: datetime

    def as_json(self, scopes: str = "") -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "clientUserId": self.client_user_id,
            "clientId": self.client_id,
            "scopes": scopes,
            "managedBy": "client",
            "createdAt": iso(self.created_at),
        }


@dataclass
class Connection:
    """A user's connection to one bank; ``id`` is ``{bankId}:{uuid}`` as in seed 001."""

    id: str
    user_id: str
    bank: Bank
    connected_on: datetime
    last_updated: datetime
    expires_at: datetime
    ledger: Ledger
    permissions: frozenset[str]
    transaction_from: datetime | None = None
    cat_type: str | None = None
    status: str = "ok"
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The connection as ``GET /users/:id/connections`` lists it (seed 001)."""
        return {
            "id": self.id,
            "name": self.bank.name,
            "connectedOn": iso(self.connected_on),
            "lastUpdated": iso(self.last_updated),
            "expiresAt": iso(self.expires_at),
            "accountIds": [account["id"] for account in self.ledger.accounts],
            "status": self.status,
            "error": self.error,
        }


@dataclass
class AuthorizationRequest:
    """A verified, validated authorization request (from a request object)."""

    client_id: str
    response_type: str
    response_mode: str
    redirect_uri: str
    scopes: tuple[str, ...]
    journey: Journey
    user_id: str
    #: ``id:<bank>`` or ``id:test|api|legacy|all`` for a new connection
    bank_scope: str | None = None
    #: the connection being reauthorised or refreshed
    connection_id: str | None = None
    state: str | None = None
    nonce: str | None = None
    offline: bool = False
    consent: dict[str, Any] | None = None
    permissions: frozenset[str] = frozenset()
    expires_at: datetime | None = None
    transaction_from: datetime | None = None
    cat_type: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    #: the request object's verified claims, for tests to inspect
    request_object: dict[str, Any] = field(default_factory=dict)
    #: the ``mh:payment`` claim's value of a payment journey (seed 001 "Payments Claim")
    payment: dict[str, Any] | None = None


@dataclass
class PushedRequest:
    request_uri: str
    request: AuthorizationRequest
    expires_at: float
    used: bool = False


@dataclass
class AuthorizationCode:
    code: str
    request: AuthorizationRequest
    connection_id: str
    expires_at: float
    auth_time: int
    used: bool = False
    #: the payment a payment journey's code completes once exchanged (seed 001)
    payment_id: str | None = None
    #: tokens issued from this code, revoked if the code is replayed (RFC 6749 §4.1.2)
    issued: list[str] = field(default_factory=list)


@dataclass
class AccessToken:
    token: str
    client_id: str
    grant_type: str
    scopes: frozenset[str]
    expires_at: float
    #: the Moneyhub user the token acts for (data tokens and authorization_code tokens)
    sub: str | None = None
    connection_id: str | None = None


@dataclass
class RefreshToken:
    token: str
    client_id: str
    user_id: str
    connection_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class Payee:
    """A receiving account registered by an API client (``POST /payees``, seed 001)."""

    id: str
    client_id: str
    sort_code: str
    account_number: str
    name: str
    created_at: datetime
    active: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "clientId": self.client_id,
            "sortCode": self.sort_code,
            "accountNumber": self.account_number,
            "createdAt": iso(self.created_at),
            "modifiedAt": iso(self.created_at),
            "active": self.active,
            "name": self.name,
        }


@dataclass
class Payment:
    """A payment initiated through the ``mh:payment`` claim; ``exchanged_at`` and
    ``connection_id`` are set once the client exchanged the code (seed 001)."""

    id: str
    client_id: str
    payee_id: str
    amount: int
    payee_ref: str
    payer_ref: str
    user_id: str
    bank_id: str
    created_at: datetime
    status: str = "pending"
    exchanged_at: datetime | None = None
    connection_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "clientId": self.client_id,
            "payeeId": self.payee_id,
            "amount": self.amount,
            "payeeRef": self.payee_ref,
            "payerRef": self.payer_ref,
            "userId": self.user_id,
            "status": self.status,
            "createdAt": iso(self.created_at),
        }
        if self.exchanged_at is not None:
            body["exchangedAt"] = iso(self.exchanged_at)
            body["connectionId"] = self.connection_id
        return body


@dataclass
class RecordedRequest:
    """One request the fake received, for tests to assert what a client sent."""

    method: str
    path: str
    endpoint: str | None
    headers: dict[str, str]
    args: dict[str, str]
    form: dict[str, str]
    json: Any
    at: float

    @property
    def grant_type(self) -> str | None:
        return self.form.get("grant_type")


@dataclass
class Fault:
    """An injected failure: answer ``status`` with ``body`` (after ``delay`` seconds)."""

    status: int
    body: Any
    times: int | None
    delay: float = 0.0
