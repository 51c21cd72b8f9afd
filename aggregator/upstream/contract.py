"""The upstream plugin contract: the one file a plugin author reads.

A plugin connects this authorization server to one kind of upstream (a bank's OAuth server,
an aggregator such as Moneyhub, any OpenID Provider). The core owns people, sessions, state,
storage, encryption, locking and caching; a plugin only speaks to its upstream:

1. ``institutions()``            what the person can pick in the chooser
2. ``begin_link()``              where to send the person's browser (and what to remember)
3. ``complete_link()``           turn the upstream's callback into one or more registrations
4. ``access_token()``            a fresh upstream access token for a registration
5. ``status()``                  is the registration still usable?
6. ``unlink()``                  revoke or delete the upstream grant

Plugins whose upstream can initiate payments also subclass :class:`PaymentsCapability`
(``check_payment``, ``begin_payment``, ``complete_payment``, ``payment_status``); the others are
simply not offered when an app asks to be paid.

Everything a plugin returns is plain data (the dataclasses below). Secrets go in ``secrets``
dictionaries, which the core encrypts at rest (AES-256-GCM) and never logs. Failures are
raised as the typed errors below, never as bare exceptions: the core maps each to a clear
message for the person or a ``status`` for the app.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from marshmallow import Schema

if TYPE_CHECKING:
    from flask import Blueprint

    from aggregator.upstream.http import UpstreamHTTP

Status = Literal["ok", "reauth_required", "expired", "error"]
#: a payment's state as apps see it (upstream states are mapped onto these)
PaymentStatus = Literal["pending", "completed", "rejected", "failed"]

#: The data scopes an app can be granted; a plugin maps them to its upstream's scopes.
DATA_SCOPES: frozenset[str] = frozenset({"accounts:read", "balances:read", "transactions:read"})


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Person:
    """The person at this AS on whose behalf the plugin acts."""

    id: str
    username: str


@dataclass(frozen=True)
class Institution:
    """One choice in the chooser: ``id`` is stable and unique within the plugin."""

    id: str
    name: str
    icon_url: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class LinkStart:
    """Where to send the browser, and what the core must hand back at the callback.

    ``remember`` is stored encrypted, bound to the person's session, for a few minutes,
    and given to :meth:`UpstreamPlugin.complete_link` exactly once (PKCE verifier, nonce, ...).
    """

    redirect_url: str
    remember: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamToken:
    """An upstream access token as handed to apps through introspection."""

    access_token: str
    expires_at: int
    token_type: str = "Bearer"
    scope: str | None = None

    def fresh_for(self, seconds: int, now: float | None = None) -> bool:
        """True when the token stays valid for at least ``seconds`` more."""
        return self.expires_at - (now if now is not None else time.time()) >= seconds


@dataclass(frozen=True)
class LinkedInstitution:
    """One registration produced by a completed link.

    ``external_id`` identifies the upstream connection (a bank user id, a Moneyhub connection
    id); linking the same one again updates the existing registration instead of adding one.
    ``share_group`` marks registrations that one upstream token covers together: the consent
    page makes the person share all or none of them, and introspection releases the token only
    for what the grant allows at every one of them. Avoid it where the upstream can do better
    (Moneyhub now gives each registration its own user, so its own token; see docs/moneyhub.md).
    """

    institution: Institution
    external_id: str
    endpoint: str
    secrets: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    token: UpstreamToken | None = None
    consent_expires_at: int | None = None
    share_group: str | None = None


@dataclass(frozen=True)
class Registration:
    """A stored registration as a plugin sees it (secrets already decrypted)."""

    id: str
    person: Person
    provider: str
    institution: Institution
    external_id: str
    endpoint: str
    secrets: dict[str, Any]
    metadata: dict[str, Any]
    consent_expires_at: int | None = None
    share_group: str | None = None
    status: Status = "ok"
    error: str | None = None


@dataclass(frozen=True)
class TokenResult:
    """What :meth:`UpstreamPlugin.access_token` returns.

    When the upstream rotated its refresh token, ``secrets`` carries the new secrets: the core
    persists them atomically *before* the token is handed to anyone, because the bank has
    already invalidated the old refresh token. ``metadata`` likewise replaces stored metadata;
    a string ``endpoint`` in it also replaces the registration's endpoint (an upstream whose
    API base can change, such as another aggregator).
    """

    token: UpstreamToken
    secrets: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class StatusReport:
    """The upstream's view of a registration's health."""

    status: Status
    error: str | None = None
    consent_expires_at: int | None = None


@dataclass(frozen=True)
class PaymentRequest:
    """What an app asked to be paid (validated by the core: positive amount, at most two
    decimals, a UK sort code of 6 digits and an account number of 8)."""

    #: a decimal string with at most two decimals, e.g. ``"1.50"``
    amount: str
    #: ISO 4217, e.g. ``"GBP"``
    currency: str
    creditor_name: str
    sort_code: str
    account_number: str
    #: the reference the payee sees (``remittanceInformationUnstructured``)
    reference: str
    #: the reference on the payer's statement, when the app gave one
    debtor_reference: str | None = None

    @property
    def minor_units(self) -> int:
        """The amount in pence (cents): ``"1.50"`` -> 150."""
        whole, _, fraction = self.amount.partition(".")
        return int(whole) * 100 + int((fraction + "00")[:2])


@dataclass(frozen=True)
class PaymentResult:
    """A payment at the upstream: its id there and its state."""

    payment_id: str
    status: PaymentStatus
    #: plain words for the person and the app when rejected or failed (no secrets)
    error: str | None = None


# --------------------------------------------------------------------------- errors


class UpstreamError(Exception):
    """Base of every plugin failure; ``description`` is safe to show to the person."""

    status: Status = "error"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidLinkOptions(UpstreamError):
    """The link request itself is wrong (unknown institution, bad options): nothing was sent."""


class LinkDenied(UpstreamError):
    """The person or the upstream refused the link (``error=access_denied`` and the like)."""


class LinkInvalid(UpstreamError):
    """The callback does not verify (bad signature, nonce, hash, missing code, ...)."""


class ReauthRequired(UpstreamError):
    """The upstream grant is gone or refused (``invalid_grant``): the person must reconnect."""

    status: Status = "reauth_required"


class ConsentExpired(UpstreamError):
    """The upstream consent's end date has passed: the person must renew it."""

    status: Status = "expired"


class UpstreamUnavailable(UpstreamError):
    """The upstream is down, slow or answered 5xx: worth retrying later."""


class InvalidPaymentRequest(UpstreamError):
    """The payment breaks the upstream's rules (a reference too long, a currency it cannot pay
    in): raised before anything leaves the process."""


class PaymentDenied(UpstreamError):
    """The person or the bank refused to authorize the payment."""


# --------------------------------------------------------------------------- context


class PluginCache(ABC):
    """Small encrypted key-value store the core gives each plugin (namespaced per plugin).

    Use it for discovery documents, institution lists, client-credentials tokens and per-person
    upstream ids. Pass ``person_id`` for a person's own data: it is kept with that person's
    records and deleted with them.
    """

    @abstractmethod
    def get(self, key: str, *, person_id: str | None = None) -> Any | None: ...

    @abstractmethod
    def set(
        self, key: str, value: Any, *, ttl: int | None = None, person_id: str | None = None
    ) -> None: ...

    @abstractmethod
    def add(
        self, key: str, value: Any, *, ttl: int | None = None, person_id: str | None = None
    ) -> bool:
        """Set only when absent; True when this call stored the value."""

    @abstractmethod
    def delete(self, key: str, *, person_id: str | None = None) -> None: ...


class PersonNotices(ABC):
    """How a plugin tells the core about a person's registrations between their visits
    (webhooks, background syncs): the dashboard shows notices; statuses update at once."""

    @abstractmethod
    def record(self, person_id: str, message: str, *, external_id: str | None = None) -> None:
        """Show ``message`` (plain, no secrets) on the person's dashboard."""

    @abstractmethod
    def report_status(self, person_id: str, external_id: str, report: StatusReport) -> bool:
        """Set the status of this plugin's registration ``external_id``; False when unknown."""

    def data_changed(self, person_id: str, external_id: str) -> bool:
        """New data is available at this plugin's registration ``external_id`` (a webhook said
        so): the apps whose grant covers it get an event. False when unknown."""
        return False


@dataclass(frozen=True)
class PluginContext:
    """What the core provides to a plugin instance."""

    #: this authorization server's issuer URL
    issuer: str
    #: ``{issuer}/connections/callback/{name}``: the redirect URI to register upstream
    callback_url: str
    cache: PluginCache
    notices: PersonNotices
    #: the outbound HTTP client (a ``requests.Session``): an overall deadline per request, a size
    #: cap, no redirects followed, the production address rules, every failure raised as
    #: :class:`UpstreamUnavailable` naming only the host
    http: UpstreamHTTP

    @property
    def http_timeout(self) -> float:
        """The seconds one upstream call may take; ``http`` applies it already. Kept for
        plugins that call ``requests`` themselves (``bench/upstream.py``)."""
        return self.http.timeout


# --------------------------------------------------------------------------- plugin


class UpstreamPlugin(ABC):
    """Subclass this, set the class attributes, implement the abstract methods.

    Register the class under the ``aggregator.plugins`` entry-point group; enable it with
    ``AGGREGATOR_PLUGINS`` and configure it with environment variables prefixed by the
    upper-cased ``name`` (``MYBANK_CLIENT_ID`` -> field ``client_id`` of ``config_schema``).
    """

    #: short id: URL segment, env prefix, ``provider`` value in introspection
    name: ClassVar[str]
    #: human name shown in the chooser
    display_name: ClassVar[str]
    #: validates this plugin's configuration (field names are the env suffixes, lower-cased)
    config_schema: ClassVar[type[Schema]]

    def __init__(self, config: Mapping[str, Any], context: PluginContext) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def institutions(self) -> list[Institution]:
        """The institutions the person can connect through this plugin."""

    @abstractmethod
    def begin_link(
        self,
        person: Person,
        institution_id: str,
        *,
        state: str,
        reconnect: Registration | None = None,
    ) -> LinkStart:
        """Start linking ``institution_id`` (or reconnecting ``reconnect``).

        Send ``state`` upstream unchanged; the callback must carry it back. Raise
        :class:`InvalidLinkOptions` before anything leaves the process when the request is wrong.
        """

    @abstractmethod
    def complete_link(
        self,
        person: Person,
        params: Mapping[str, str],
        remember: Mapping[str, Any],
        *,
        reconnect: Registration | None = None,
    ) -> list[LinkedInstitution]:
        """Finish the link from the callback's parameters (query or form_post).

        The core has already matched ``state`` and the person's session. Raise
        :class:`LinkDenied` for an upstream refusal, :class:`LinkInvalid` for anything that
        does not verify, :class:`UpstreamUnavailable` when the upstream cannot be reached.
        """

    @abstractmethod
    def access_token(self, registration: Registration, scopes: frozenset[str]) -> TokenResult:
        """A token for ``registration`` limited to the data ``scopes`` (see :data:`DATA_SCOPES`).

        Called by the core only when its cached token is not fresh enough; the core holds a
        lock for the registration meanwhile, so at most one call per registration runs at once.
        Raise :class:`ReauthRequired`, :class:`ConsentExpired` or :class:`UpstreamUnavailable`.
        """

    @abstractmethod
    def unlink(self, registration: Registration) -> None:
        """Revoke or delete the upstream grant. Must succeed when it is already gone."""

    def status(self, registration: Registration) -> StatusReport:
        """The upstream's view of the registration.

        The default knows only the consent's end date; otherwise it keeps the stored status
        (set by failed refreshes). Override it when the upstream can be asked.
        """
        expires = registration.consent_expires_at
        if expires is not None and expires <= time.time():
            return StatusReport("expired", "The consent at the institution has expired.", expires)
        return StatusReport(registration.status, registration.error, expires)

    def forget_person(self, person: Person) -> None:  # noqa: B027 - optional hook
        """Called when a person is deleted, after all their registrations were unlinked."""

    def blueprint(self) -> Blueprint | None:
        """Extra HTTP routes (webhooks, ...) mounted under ``/plugins/<name>/``; optional."""
        return None


class PaymentsCapability(ABC):
    """Mix into an :class:`UpstreamPlugin` whose upstream can initiate payments.

    The core asks the person which of their registrations pays, then calls, in order:
    ``check_payment`` (before showing anything upstream), ``begin_payment`` (send the browser
    to the upstream's payment authorization; the redirect URI is ``context.callback_url``, the
    same as for links, and ``state`` must come back unchanged), ``complete_payment`` with the
    callback's parameters and what ``begin_payment`` asked to remember, and later
    ``payment_status`` whenever the app asks.
    """

    def check_payment(  # noqa: B027 - optional hook
        self, payment: PaymentRequest, registration: Registration | None = None
    ) -> None:
        """Raise :class:`InvalidPaymentRequest` when the upstream cannot make this payment, or
        (given ``registration``) cannot make it from that registration (a card issuer holds no
        account to pay from). Called before anything is sent: keep it to known rules and
        cached metadata."""

    @abstractmethod
    def begin_payment(
        self, registration: Registration, payment: PaymentRequest, *, state: str
    ) -> LinkStart:
        """Start the payment's authorization at the upstream for ``registration``."""

    @abstractmethod
    def complete_payment(
        self, registration: Registration, params: Mapping[str, str], remember: Mapping[str, Any]
    ) -> PaymentResult:
        """Finish it from the callback: the upstream's payment id and its state. Raise
        :class:`PaymentDenied`, :class:`LinkInvalid` or :class:`UpstreamUnavailable`."""

    @abstractmethod
    def payment_status(self, registration: Registration, payment_id: str) -> PaymentResult:
        """The payment's current state at the upstream."""


def supports_payments(plugin: UpstreamPlugin) -> bool:
    """True when ``plugin`` can initiate payments."""
    return isinstance(plugin, PaymentsCapability)
