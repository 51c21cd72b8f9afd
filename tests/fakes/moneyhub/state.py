"""The fake's in-memory state and the controls tests use to steer it.

One ``FakeMoneyhub`` per app. Every read and write goes through one re-entrant lock, because
the live server answers requests on several threads while the test thread steers it.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import BANKS_BY_ID, Bank, banks_of_type
from .errors import InvalidGrant, InvalidRequestUri
from .ledger import generate_ledger, iso
from .models import (
    AccessToken,
    AuthorizationCode,
    AuthorizationRequest,
    Connection,
    Fault,
    Payee,
    Payment,
    PushedRequest,
    RecordedRequest,
    RefreshToken,
    User,
)
from .settings import FakeClient, FakeMoneyhubSettings

#: what ``corrupt_id_tokens`` can break, each caught by a careful relying party
ID_TOKEN_FAULTS: frozenset[str] = frozenset(
    {"signature", "nonce", "c_hash", "s_hash", "at_hash", "aud", "iss", "expired", "sub", "con_id"}
)
CHANNELS: frozenset[str] = frozenset({"authorization", "token", "all"})

#: seed 003 defaults, requested unless ``permissionsAction: replace``
DEFAULT_PERMISSIONS: frozenset[str] = frozenset({
    "ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail",
    "ReadTransactionsCredits", "ReadTransactionsDebits", "ReadProducts",
})


class FakeMoneyhub:
    """State of one fake Moneyhub plus the test controls (the public methods)."""

    def __init__(self, settings: FakeMoneyhubSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._pristine_clients = copy.deepcopy(settings.clients)
        #: Flask endpoint names, filled in by the app factory so ``fail`` can catch typos
        self.endpoints: frozenset[str] = frozenset()
        self.reset()

    def reset(self) -> None:
        """Forget everything: back to the registered clients and nothing else."""
        with self._lock:
            self._clients: dict[str, FakeClient] = {
                c.client_id: c for c in copy.deepcopy(self._pristine_clients)
            }
            self._users: dict[str, User] = {}
            self._connections: dict[str, Connection] = {}
            self._pushed: dict[str, PushedRequest] = {}
            self._codes: dict[str, AuthorizationCode] = {}
            self._access_tokens: dict[str, AccessToken] = {}
            self._refresh_tokens: dict[str, RefreshToken] = {}
            self._jtis: dict[tuple[str, str], float] = {}
            self._log: list[RecordedRequest] = []
            self._faults: dict[str, Fault] = {}
            self._denials: list[tuple[str, str]] = []
            self._id_token_faults: dict[str, set[str]] = {"authorization": set(), "token": set()}
            self._chosen_bank: str | None = None
            self._rotate_refresh_tokens = self.settings.rotate_refresh_tokens
            self._counter = 0
            self._payees: dict[str, Payee] = {}
            self._payments: dict[str, Payment] = {}
            self._advertised = {"par": True, "request_object": True}

    # ------------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.settings.clock()

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def _next_hex(self, length: int) -> str:
        # deterministic ids (same seed, same order of events -> same ids) keep data reproducible
        self._counter += 1
        seed = f"{self.settings.seed}:{self._counter}".encode()
        return hashlib.sha256(seed).hexdigest()[:length]

    # ------------------------------------------------------------------ clients

    def client(self, client_id: str | None) -> FakeClient | None:
        with self._lock:
            return self._clients.get(client_id or "")

    def add_client(self, client: FakeClient) -> None:
        """Register another API client (as the admin portal would)."""
        with self._lock:
            self._clients[client.client_id] = client

    def add_redirect_uri(self, uri: str, client_id: str | None = None) -> None:
        """Register ``uri`` for ``client_id`` (every client when ``None``)."""
        with self._lock:
            for client in self._clients.values():
                if client_id in (None, client.client_id) and uri not in client.redirect_uris:
                    client.redirect_uris.append(uri)

    # ------------------------------------------------------------------ users

    def create_user(self, client_id: str, client_user_id: str | None = None) -> User:
        """A new Moneyhub user profile for ``client_id`` (``POST /users``)."""
        with self._lock:
            user = User(self._next_hex(24), client_id, client_user_id, self.utcnow())
            self._users[user.user_id] = user
            return user

    def user(self, user_id: str, client_id: str | None = None) -> User | None:
        """The user, or None (also when it belongs to another client than ``client_id``)."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None or (client_id is not None and user.client_id != client_id):
                return None
            return user

    def users(self, client_id: str | None = None) -> list[User]:
        with self._lock:
            return [u for u in self._users.values() if client_id in (None, u.client_id)]

    def delete_user(self, user_id: str) -> bool:
        """Delete the user, its connections and every token issued for it."""
        with self._lock:
            if self._users.pop(user_id, None) is None:
                return False
            for connection in self.connections(user_id):
                self.delete_connection(connection.id)
            for token in [t for t in self._access_tokens.values() if t.sub == user_id]:
                del self._access_tokens[token.token]
            return True

    # ------------------------------------------------------------------ connections

    def connections(self, user_id: str) -> list[Connection]:
        with self._lock:
            return [c for c in self._connections.values() if c.user_id == user_id]

    def connection(self, connection_id: str) -> Connection | None:
        with self._lock:
            return self._connections.get(connection_id)

    def create_connection(
        self,
        user_id: str,
        bank: Bank,
        *,
        permissions: frozenset[str] = DEFAULT_PERMISSIONS,
        expires_at: datetime | None = None,
        transaction_from: datetime | None = None,
        cat_type: str | None = None,
    ) -> Connection:
        """Connect ``user_id`` to ``bank`` as a completed bank journey would."""
        with self._lock:
            now = self.utcnow()
            connection_id = f"{bank.id}:{uuid.UUID(self._next_hex(32), version=4)}"
            ledger = generate_ledger(self.settings.seed, connection_id, bank, now)
            if transaction_from is not None:
                cutoff = iso(transaction_from)
                ledger.transactions = [t for t in ledger.transactions if t["date"] >= cutoff]
            connection = Connection(
                id=connection_id,
                user_id=user_id,
                bank=bank,
                connected_on=now,
                last_updated=now,
                expires_at=expires_at or now + timedelta(days=90),
                ledger=ledger,
                permissions=permissions,
                transaction_from=transaction_from,
                cat_type=cat_type,
            )
            self._connections[connection_id] = connection
            return connection

    def renew_connection(self, connection_id: str, request: AuthorizationRequest) -> Connection:
        """A reauth or refresh journey: the connection is healthy again (and renewed)."""
        with self._lock:
            connection = self._connections[connection_id]
            now = self.utcnow()
            connection.status, connection.error, connection.last_updated = "ok", None, now
            if request.journey == "reauth":
                connection.expires_at = request.expires_at or now + timedelta(days=90)
            if request.cat_type:
                connection.cat_type = request.cat_type
            return connection

    def delete_connection(self, connection_id: str) -> bool:
        """Delete the connection, revoking the grant behind it (seed 001)."""
        with self._lock:
            if self._connections.pop(connection_id, None) is None:
                return False
            for token in [
                t for t in self._refresh_tokens.values() if t.connection_id == connection_id
            ]:
                del self._refresh_tokens[token.token]
            return True

    def set_connection_status(
        self,
        connection_id: str,
        status: str = "error",
        error: str | None = None,
        *,
        expires_at: datetime | None = None,
    ) -> Connection:
        """Put a connection in a state, e.g. ``("error", "mfa_required")`` (seed 001 list)."""
        if status not in ("ok", "error"):
            raise ValueError(f"unknown connection status {status!r}")
        with self._lock:
            connection = self._connections[connection_id]
            connection.status, connection.error = status, error
            if expires_at is not None:
                connection.expires_at = expires_at
            return connection

    def expire_connection(self, connection_id: str) -> Connection:
        """Make the connection's consent end a day ago."""
        with self._lock:
            connection = self._connections[connection_id]
            connection.expires_at = self.utcnow() - timedelta(days=1)
            return connection

    # ------------------------------------------------------------------ the bank chooser

    def choose_bank(self, bank_id: str | None) -> None:
        """The bank the person picks when the chooser is shown (None: the list's first)."""
        if bank_id is not None and bank_id not in BANKS_BY_ID:
            raise ValueError(f"unknown bank {bank_id!r}")
        with self._lock:
            self._chosen_bank = bank_id

    def pick_bank(self, bank_scope: str) -> Bank:
        """Resolve ``id:<bank>`` or a chooser scope to the bank the journey connects."""
        value = bank_scope.removeprefix("id:")
        if value in BANKS_BY_ID:
            return BANKS_BY_ID[value]
        shown = banks_of_type(value)
        with self._lock:
            chosen = self._chosen_bank
        for bank in shown:
            if bank.id == chosen:
                return bank
        return shown[0]

    # ------------------------------------------------------------------ PAR and codes

    def push(self, request: AuthorizationRequest, *, registered: bool = False) -> PushedRequest:
        """Store a pushed authorization request (RFC 9126 §2.2), or with ``registered`` a request
        object posted to the request object endpoint (``urn:x-mh-request:<uuid>``, seed 001)."""
        with self._lock:
            uri = (f"urn:x-mh-request:{uuid.uuid4()}" if registered
                   else f"urn:ietf:params:oauth:request_uri:{secrets.token_urlsafe(24)}")
            pushed = PushedRequest(uri, request, self.now() + self.settings.request_uri_ttl)
            self._pushed[uri] = pushed
            return pushed

    def take_pushed(self, request_uri: str, client_id: str) -> AuthorizationRequest:
        """Redeem a request_uri once (RFC 9126 §4: one-time use is recommended; we enforce it)."""
        with self._lock:
            pushed = self._pushed.get(request_uri)
            if pushed is None or pushed.request.client_id != client_id:
                raise InvalidRequestUri("unknown request_uri")
            if pushed.used:
                raise InvalidRequestUri("request_uri was already used")
            if pushed.expires_at <= self.now():
                raise InvalidRequestUri("request_uri has expired")
            pushed.used = True
            return pushed.request

    def issue_code(self, request: AuthorizationRequest, connection_id: str,
                   payment_id: str | None = None) -> str:
        with self._lock:
            code = secrets.token_urlsafe(32)
            self._codes[code] = AuthorizationCode(
                code, request, connection_id, self.now() + self.settings.code_ttl, int(self.now()),
                payment_id=payment_id,
            )
            return code

    def redeem_code(self, code: str, client_id: str) -> AuthorizationCode:
        """Consume a code once; a replay revokes what it issued (RFC 6749 §4.1.2)."""
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.request.client_id != client_id:
                raise InvalidGrant("unknown authorization code")
            if record.used:
                for token in record.issued:
                    self._access_tokens.pop(token, None)
                    self._refresh_tokens.pop(token, None)
                raise InvalidGrant("authorization code was already used")
            if record.expires_at <= self.now():
                raise InvalidGrant("authorization code has expired")
            if record.payment_id is None and record.connection_id not in self._connections:
                raise InvalidGrant("the connection no longer exists")
            record.used = True
            if record.payment_id is not None:
                # seed 001: exchanging the code is what completes the payment's authorisation
                payment = self._payments[record.payment_id]
                payment.exchanged_at, payment.connection_id = self.utcnow(), record.connection_id
            return record

    # ------------------------------------------------------------------ tokens

    def issue_access_token(
        self,
        client_id: str,
        grant_type: str,
        scopes: Iterable[str],
        *,
        sub: str | None = None,
        connection_id: str | None = None,
    ) -> AccessToken:
        with self._lock:
            token = AccessToken(
                token=secrets.token_urlsafe(32),
                client_id=client_id,
                grant_type=grant_type,
                scopes=frozenset(scopes),
                expires_at=self.now() + self.settings.access_token_ttl,
                sub=sub,
                connection_id=connection_id,
            )
            self._access_tokens[token.token] = token
            return token

    def access_token(self, token: str) -> AccessToken | None:
        """The live access token, or None when unknown or expired."""
        with self._lock:
            record = self._access_tokens.get(token)
            if record is None or record.expires_at <= self.now():
                return None
            if record.sub is not None and record.sub not in self._users:
                return None
            return record

    def issue_refresh_token(
        self, client_id: str, user_id: str, connection_id: str, scopes: Iterable[str]
    ) -> RefreshToken:
        with self._lock:
            token = RefreshToken(
                secrets.token_urlsafe(32), client_id, user_id, connection_id,
                frozenset(scopes), self.now() + self.settings.refresh_token_ttl,
            )
            self._refresh_tokens[token.token] = token
            return token

    def use_refresh_token(self, token: str, client_id: str) -> RefreshToken:
        """The refresh token's grant; rotated (old one retired) when the settings say so."""
        with self._lock:
            record = self._refresh_tokens.get(token)
            if record is None or record.client_id != client_id:
                raise InvalidGrant("unknown refresh token")
            if record.expires_at <= self.now():
                raise InvalidGrant("refresh token has expired")
            if record.connection_id not in self._connections:
                raise InvalidGrant("the connection behind this grant was deleted")
            if self._rotate_refresh_tokens:
                del self._refresh_tokens[token]
                return self.issue_refresh_token(
                    client_id, record.user_id, record.connection_id, record.scopes
                )
            return record

    def rotate_refresh_tokens(self, enabled: bool = True) -> None:
        """Issue a new refresh token at each refresh_token grant, retiring the old one."""
        with self._lock:
            self._rotate_refresh_tokens = enabled

    def remember_code_tokens(self, code: AuthorizationCode, *tokens: str) -> None:
        with self._lock:
            code.issued.extend(tokens)

    def use_jti(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record a client assertion's ``jti``; False when it was seen before (RFC 7523 §3)."""
        with self._lock:
            now = self.now()
            self._jtis = {k: v for k, v in self._jtis.items() if v > now}
            if (client_id, jti) in self._jtis:
                return False
            self._jtis[(client_id, jti)] = expires_at
            return True

    # ------------------------------------------------------------------ payees and payments

    def create_payee(self, client_id: str, sort_code: str, account_number: str, name: str) -> Payee:
        """A receiving account for ``client_id`` (``POST /payees``)."""
        with self._lock:
            payee = Payee(str(uuid.UUID(self._next_hex(32), version=4)), client_id, sort_code,
                          account_number, name, self.utcnow())
            self._payees[payee.id] = payee
            return payee

    def payees(self, client_id: str | None = None) -> list[Payee]:
        with self._lock:
            return [p for p in self._payees.values() if client_id in (None, p.client_id)]

    def payee(self, payee_id: str, client_id: str) -> Payee | None:
        with self._lock:
            payee = self._payees.get(payee_id)
            return payee if payee is not None and payee.client_id == client_id else None

    def deactivate_payee(self, payee_id: str) -> None:
        """As an operator would in Moneyhub's admin portal: no payment may use it any more."""
        with self._lock:
            self._payees[payee_id].active = False

    def create_payment(self, request: AuthorizationRequest, bank: Bank) -> Payment:
        """The payment a person authorised at the bank; it waits for the code exchange."""
        claim = request.payment or {}
        with self._lock:
            payment = Payment(
                id=str(uuid.UUID(self._next_hex(32), version=4)),
                client_id=request.client_id,
                payee_id=claim["payeeId"],
                amount=claim["amount"],
                payee_ref=claim["payeeRef"],
                payer_ref=claim["payerRef"],
                user_id=request.user_id,
                bank_id=bank.id,
                created_at=self.utcnow(),
            )
            self._payments[payment.id] = payment
            return payment

    def payments(self, client_id: str | None = None) -> list[Payment]:
        with self._lock:
            return [p for p in self._payments.values() if client_id in (None, p.client_id)]

    def payment(self, payment_id: str, client_id: str | None = None) -> Payment | None:
        with self._lock:
            payment = self._payments.get(payment_id)
            if payment is None or client_id not in (None, payment.client_id):
                return None
            return payment

    def settle_payment(self, payment_id: str, status: str = "completed") -> Payment:
        """Move a payment on, as the bank would: ``completed``, ``rejected`` or any other
        status word a test needs the client to cope with."""
        with self._lock:
            payment = self._payments[payment_id]
            payment.status = status
            return payment

    def advertise(self, *, par: bool = True, request_object: bool = True) -> None:
        """Which ways of passing a request object discovery lists (PAR, seed 001's
        request object endpoint); ``reset`` lists both again."""
        with self._lock:
            self._advertised = {"par": par, "request_object": request_object}

    def advertised(self, name: str) -> bool:
        with self._lock:
            return self._advertised[name]

    # ------------------------------------------------------------------ controls: failures

    def fail(
        self,
        endpoint: str,
        status: int = 500,
        *,
        error: str = "server_error",
        description: str = "injected failure",
        body: Any = None,
        times: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """Make ``endpoint`` (a Flask endpoint name such as ``oidc.token``) answer ``status``.

        ``times=None`` keeps failing until :meth:`clear_faults`; ``body`` replaces the default
        OAuth error JSON (a ``str`` is sent as is).
        """
        if self.endpoints and endpoint not in self.endpoints:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {sorted(self.endpoints)}")
        payload = body if body is not None else {"error": error, "error_description": description}
        with self._lock:
            self._faults[endpoint] = Fault(status, payload, times, delay)

    def delay(self, endpoint: str, seconds: float, *, times: int | None = 1) -> None:
        """Answer ``endpoint`` normally, but only after ``seconds``."""
        self.fail(endpoint, 0, body={}, times=times, delay=seconds)

    def take_fault(self, endpoint: str | None) -> Fault | None:
        with self._lock:
            fault = self._faults.get(endpoint or "")
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[endpoint or ""]
            return replace(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._denials.clear()
            self._id_token_faults = {"authorization": set(), "token": set()}

    def deny_authorization(
        self,
        error: str = "access_denied",
        description: str = "The user refused access at the bank",
        *,
        times: int = 1,
    ) -> None:
        """The next ``times`` journeys end with ``error`` at the redirect URI."""
        with self._lock:
            self._denials.extend([(error, description)] * times)

    def take_denial(self) -> tuple[str, str] | None:
        with self._lock:
            return self._denials.pop(0) if self._denials else None

    def corrupt_id_tokens(self, *faults: str, channel: str = "all") -> None:
        """Break the id_tokens the fake issues from now on (see :data:`ID_TOKEN_FAULTS`).

        ``channel`` is ``authorization`` (front channel), ``token`` (token endpoint) or ``all``.
        """
        unknown = set(faults) - ID_TOKEN_FAULTS
        if unknown or channel not in CHANNELS:
            raise ValueError(f"unknown fault(s) {sorted(unknown)} or channel {channel!r}")
        with self._lock:
            for name in ("authorization", "token"):
                if channel in (name, "all"):
                    self._id_token_faults[name].update(faults)

    def id_token_faults(self, channel: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._id_token_faults[channel])

    # ------------------------------------------------------------------ controls: inspection

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def requests(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """Requests received so far (optionally only those to ``endpoint``), oldest first."""
        with self._lock:
            return [r for r in self._log if endpoint in (None, r.endpoint)]

    def token_requests(self, grant_type: str | None = None) -> list[RecordedRequest]:
        """Token endpoint requests, optionally of one ``grant_type``."""
        return [
            r for r in self.requests("oidc.token") if grant_type in (None, r.grant_type)
        ]

    def pushed_requests(self) -> list[AuthorizationRequest]:
        """Every authorization request accepted at the PAR endpoint, oldest first."""
        with self._lock:
            return [p.request for p in self._pushed.values()]

    def access_tokens(self, sub: str | None = None) -> list[AccessToken]:
        """Live access tokens (optionally those acting for Moneyhub user ``sub``)."""
        with self._lock:
            now = self.now()
            return [
                t for t in self._access_tokens.values()
                if t.expires_at > now and sub in (None, t.sub)
            ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

