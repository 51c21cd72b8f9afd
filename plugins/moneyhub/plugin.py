"""The Moneyhub upstream plugin: Moneyhub bank connections as registrations.

To Moneyhub this server is an API client ("partner", seed 000 use case 2). Moneyhub issues data
tokens per *user*, never per connection, so every link gets a Moneyhub user of its own: the
registration's token reaches that link's connection and nothing else, and needs no share group.
``users.py`` creates those users, cleans up abandoned links and deletes, before any token is
released, each connection a token would reach beyond its registration (see docs/moneyhub.md).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aggregator.upstream.contract import (
    ConsentExpired,
    Institution,
    InvalidLinkOptions,
    InvalidPaymentRequest,
    LinkDenied,
    LinkedInstitution,
    LinkInvalid,
    LinkStart,
    PaymentDenied,
    PaymentRequest,
    PaymentResult,
    PaymentsCapability,
    Person,
    PluginContext,
    ReauthRequired,
    Registration,
    StatusReport,
    TokenResult,
    UpstreamError,
    UpstreamPlugin,
    UpstreamToken,
    UpstreamUnavailable,
)
from aggregator.upstream.id_tokens import IdTokenVerifier
from aggregator.upstream.oidc_client import OAuthRefusal, pkce
from plugins.moneyhub import connections, payments
from plugins.moneyhub.authorization import AuthorizationRequest, Consent, months_before
from plugins.moneyhub.config import CONNECTION_TYPES, MoneyhubConfig, MoneyhubSettings
from plugins.moneyhub.data_scopes import moneyhub_scopes
from plugins.moneyhub.identity import MoneyhubIdentity
from plugins.moneyhub.payments import MoneyhubPayments
from plugins.moneyhub.users import DEDICATED, MoneyhubUsers

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger("plugins.moneyhub")

CHOOSER_NAMES: dict[str, str] = {
    "test": "Moneyhub test banks (choose at Moneyhub)",
    "api": "Any Open Banking bank (choose at Moneyhub)",
    "legacy": "Any other provider (choose at Moneyhub)",
    "all": "Any bank (choose at Moneyhub)",
}
ERRORS_FOR_LATER = frozenset({"temporarily_unavailable", "server_error"})


class MoneyhubPlugin(UpstreamPlugin, PaymentsCapability):
    """Moneyhub's identity service and Data API (seeds 000-003)."""

    name = "moneyhub"
    display_name = "Moneyhub"
    config_schema = MoneyhubConfig

    def __init__(
        self,
        config: Mapping[str, Any],
        context: PluginContext,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, context)
        self.settings = MoneyhubSettings(**config)
        self.clock = clock
        self.identity = MoneyhubIdentity(self.settings, context.cache, context.http, clock)
        self.users = MoneyhubUsers(self.identity, context.cache, context.notices, clock,
                                   self.settings.status_ttl)
        self.payments = MoneyhubPayments(self.identity, context.cache)

    # ------------------------------------------------------------------ the chooser

    def institutions(self) -> list[Institution]:
        """The banks of the configured connection list, then Moneyhub's own chooser."""
        kind = self.settings.connection_type
        found = [self._institution(bank) for bank in self.identity.banks(kind)]
        found.append(Institution(kind, CHOOSER_NAMES[kind], None,
                                 "Pick your bank from Moneyhub's list"))
        return found

    def _institution(self, bank: dict[str, Any]) -> Institution:
        icon = bank.get("iconUrl")
        if isinstance(icon, str) and "/bank-icons/" in icon:
            # seed 001: some banks have no icon; defaultIcon=true answers the generic one
            icon += ("&" if "?" in icon else "?") + "defaultIcon=true"
        kinds = [t.get("name") for t in bank.get("accountTypes") or [] if isinstance(t, dict)]
        description = ", ".join(k for k in kinds if isinstance(k, str)) or None
        return Institution(bank["id"], str(bank.get("name") or bank["id"]),
                           icon if isinstance(icon, str) else None, description)

    def _bank(self, bank_id: str) -> dict[str, Any] | None:
        """A bank by id, looked up in the configured list first, then the others."""
        order = [self.settings.connection_type,
                 *(k for k in ("test", "api", "legacy") if k != self.settings.connection_type)]
        for kind in order:
            for bank in self.identity.banks(kind):
                if bank["id"] == bank_id:
                    return bank
        return None

    # ------------------------------------------------------------------ people

    def owner_of(self, user_id: str) -> str | None:
        """Our person id for a Moneyhub user id, if the user is one of ours."""
        return self.context.cache.get(f"owner:{user_id}")

    def forget_person(self, person: Person) -> None:
        """Deleting a person deletes every Moneyhub user left for them: those of unfinished
        links and the shared one of the old model (``DELETE /users/:id``)."""
        try:
            self.users.sweep(person.id, everything=True)
        finally:
            self.users.forget_person_user(person.id)

    # ------------------------------------------------------------------ linking

    def begin_link(
        self,
        person: Person,
        institution_id: str,
        *,
        state: str,
        reconnect: Registration | None = None,
    ) -> LinkStart:
        """Check the request, push it as a signed request object (PAR), and point the browser
        at Moneyhub with the ``request_uri``."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        if reconnect is not None:
            request = self._renewal(reconnect)
        else:
            request = AuthorizationRequest(
                scopes=(
                    "openid",
                    *(("offline_access",) if self.settings.offline_access else ()),
                    self._bank_scope(institution_id),
                ),
                user_id="",
                response_type=self.settings.response_type,
                consent=self._consent(now),
                category_type=self.settings.category_type,
            )
        request.check(now)  # before anything leaves the process
        if not request.user_id:
            request = replace(request, user_id=self.users.create_for_link(person.id))
        return self.start(request, state=state)

    def start(self, request: AuthorizationRequest, *, state: str) -> LinkStart:
        """Push ``request`` (checked again here) and build the authorization URL."""
        request.check(datetime.fromtimestamp(self.clock(), UTC))
        params: dict[str, Any] = {
            "response_type": request.response_type,
            "scope": " ".join(request.scopes),
            "claims": request.claims(),
        }
        if request.journey == "connect":
            # OIDC Core §11: offline_access is only honoured with prompt=consent
            params["prompt"] = "consent"
        url, nonce, verifier = self.authorization(params, state=state,
                                                  action="start the connection")
        consent = request.consent.claim_value() if request.consent else None
        return LinkStart(
            url,
            {
                "journey": request.journey,
                "response_type": request.response_type,
                "nonce": nonce,
                "code_verifier": verifier,
                "user_id": request.user_id,
                # a new connection's user is its own; links begun before that lack the mark
                "dedicated": request.journey == "connect",
                "connection_id": request.connection_id,
                "requested_expiry": (consent or {}).get("expirationDateTime"),
            },
        )

    def authorization(
        self, params: dict[str, Any], *, state: str, action: str
    ) -> tuple[str, str, str | None]:
        """The authorization URL for ``params`` plus our redirect URI, ``state``, a fresh nonce
        and PKCE when offered, sent as a signed request object; also the nonce and verifier."""
        nonce = secrets.token_urlsafe(24)
        params = {**params, "redirect_uri": self.context.callback_url, "state": state,
                  "nonce": nonce}
        verifier = None
        if "code" in params["response_type"] and "S256" in self.identity.metadata().get(
            "code_challenge_methods_supported", []
        ):
            verifier, challenge = pkce()
            params.update(challenge)
        try:
            return self.identity.signed_authorization_url(params), nonce, verifier
        except OAuthRefusal as failure:
            raise UpstreamError(failure.explain(action)) from None

    def _bank_scope(self, institution_id: str) -> str:
        """``id:<bank>`` for a listed bank, ``id:<type>`` for Moneyhub's own chooser."""
        if institution_id == self.settings.connection_type and institution_id in CONNECTION_TYPES:
            return f"id:{institution_id}"
        listed = {bank["id"] for bank in self.identity.banks(self.settings.connection_type)}
        if institution_id not in listed:
            raise InvalidLinkOptions("Moneyhub does not offer that bank here.")
        return f"id:{institution_id}"

    def _consent(self, now: datetime) -> Consent | None:
        """``mh:consent`` from the configuration (seed 003), or None for Moneyhub's defaults."""
        s = self.settings
        if not (s.consent_days or s.history_months or s.permissions or s.permissions_action):
            return None
        return Consent(
            expiration=now + timedelta(days=s.consent_days) if s.consent_days else None,
            transaction_from=months_before(now, s.history_months) if s.history_months else None,
            permissions=tuple(s.permissions),
            permissions_action=s.permissions_action,
        )

    def _renewal(self, registration: Registration) -> AuthorizationRequest:
        """A reauth or refresh journey for the registration's connection (seed 001)."""
        user_id = registration.metadata.get("moneyhub_user_id")
        if not isinstance(user_id, str) or not user_id:
            raise InvalidLinkOptions("This connection has no Moneyhub user; connect it again.")
        try:
            connection = self._connection(user_id, registration.external_id)
        except UpstreamUnavailable:
            connection = None  # the journey choice is a hint; reauth is the safe default
        journey = connections.reconnect_journey(connection, self.clock())
        return AuthorizationRequest(
            scopes=("openid", journey),
            user_id=user_id,
            # seed 001: the id_token alone reports the outcome of these journeys
            response_type="id_token",
            connection_id=registration.external_id,
            category_type=self.settings.category_type if journey == "reauth" else None,
        )

    def complete_link(
        self,
        person: Person,
        params: Mapping[str, str],
        remember: Mapping[str, Any],
        *,
        reconnect: Registration | None = None,
    ) -> list[LinkedInstitution]:
        """Verify Moneyhub's answer and turn the connection it names into a registration.

        A new link that fails here deletes its Moneyhub user at once: no registration will
        name it, and the person may have approved at the bank already.
        """
        new = remember["journey"] == "connect"
        if new and not remember.get("dedicated"):
            # begun before users were per link, towards the person's shared user: whatever it
            # connected is no registration, so reconciliation deletes it before any release
            raise LinkInvalid("This connection was started before an update of this service; "
                              "connect the bank again.")
        try:
            connection_id, refresh_token = self._verified(params, remember)
        except UpstreamError:
            if new:
                self.users.abandon(remember["user_id"])
            raise
        if reconnect is not None:
            if connection_id != reconnect.external_id:
                raise LinkInvalid("Moneyhub renewed another connection than the one asked for.")
            refresh_token = refresh_token or reconnect.secrets.get("refresh_token")
            return [self._linked(remember["user_id"], connection_id, refresh_token, remember,
                                 dedicated=bool(reconnect.metadata.get(DEDICATED)),
                                 group=reconnect.share_group)]
        return [self._linked(remember["user_id"], connection_id, refresh_token, remember,
                             dedicated=True, group=None)]

    def _verified(
        self, params: Mapping[str, str], remember: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        """The connection id (``mh:con_id``) and refresh token of a callback that verifies."""
        _raise_for_error(params)
        claims, refresh_token = self._verified_claims(params, remember)
        connection_id = claims.get("mh:con_id")
        if not isinstance(connection_id, str) or not connection_id:
            raise LinkInvalid("Moneyhub's id_token names no connection (mh:con_id).")
        if remember["journey"] != "connect" and connection_id != remember["connection_id"]:
            raise LinkInvalid("Moneyhub renewed another connection than the one asked for.")
        return connection_id, refresh_token

    def _verified_claims(
        self, params: Mapping[str, str], remember: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The verified id_token claims of a callback (after the code exchange when there is a
        code) and the refresh token, if any."""
        response_type = remember["response_type"]
        verifier = self.identity.id_tokens()
        code = (params.get("code") or None) if "code" in response_type else None
        if "code" in response_type and not code:
            raise LinkInvalid("Moneyhub sent no authorization code back.")
        front = None
        if "id_token" in response_type:
            id_token = params.get("id_token")
            if not id_token:
                raise LinkInvalid("Moneyhub sent no id_token back.")
            # OIDC Core §3.3.2.12: check the front-channel token before using the code
            front = verifier.verify(id_token, nonce=remember["nonce"], sub=remember["user_id"],
                                    code=code, state=params.get("state"))
        refresh_token = None
        if code is not None:
            claims, refresh_token = self._exchange(code, remember, verifier)
        else:
            claims = front or {}
        return claims, refresh_token

    def _exchange(
        self, code: str, remember: Mapping[str, Any], verifier: IdTokenVerifier
    ) -> tuple[dict[str, Any], str | None]:
        """RFC 6749 §4.1.3 code exchange; the id_token must verify (OIDC Core §3.1.3.7)."""
        try:
            tokens = self.identity.exchange_code(code, self.context.callback_url,
                                                 remember.get("code_verifier"))
        except OAuthRefusal as failure:
            if failure.error in ("invalid_grant", "invalid_request"):
                raise LinkInvalid(failure.explain("accept the authorization code")) from None
            raise UpstreamError(failure.explain("accept the authorization code")) from None
        if not isinstance(tokens.get("id_token"), str):
            raise LinkInvalid("Moneyhub's token response has no id_token.")
        claims = verifier.verify(tokens["id_token"], nonce=remember["nonce"],
                                 sub=remember["user_id"], access_token=tokens["access_token"])
        refresh = tokens.get("refresh_token")
        return claims, refresh if isinstance(refresh, str) else None

    def _linked(
        self,
        user_id: str,
        connection_id: str,
        refresh_token: str | None,
        remember: Mapping[str, Any],
        *,
        dedicated: bool,
        group: str | None,
    ) -> LinkedInstitution:
        """The registration: ``dedicated`` when its Moneyhub user is its own (no share group);
        an old-model registration keeps its user's ``group`` through reconnects."""
        # seed 001: connection ids are "{bankId}:{uuid}"
        bank_id = connection_id.split(":", 1)[0]
        self.users.forget_connections(user_id)  # it has a new member now
        bank = connection = None
        try:
            # descriptive only: the link itself has succeeded, so failures here must not lose it
            bank = self._bank(bank_id) if ":" in connection_id else None
            connection = self._connection(user_id, connection_id)
        except UpstreamError:
            log.warning("bank or connection details unavailable after linking")
        name = (bank or {}).get("name") or (connection or {}).get("name") or "Moneyhub connection"
        expiry = connections.expires_at(connection) if connection else None
        if expiry is None and remember.get("requested_expiry"):
            expiry = connections.expires_at({"expiresAt": remember["requested_expiry"]})
        institution = (self._institution(bank) if bank
                       else Institution(bank_id, str(name), None, None))
        return LinkedInstitution(
            institution=institution,
            external_id=connection_id,
            endpoint=self.settings.data_api_url,
            secrets={"refresh_token": refresh_token} if refresh_token else {},
            metadata={
                "moneyhub_user_id": user_id,
                "bank_id": bank_id,
                "bank_ref": (bank or {}).get("bankRef"),
                "connection_type": (bank or {}).get("type"),
                **({DEDICATED: True} if dedicated else {}),
            },
            consent_expires_at=expiry,
            share_group=group,
        )

    # ------------------------------------------------------------------ data access

    def access_token(self, registration: Registration, scopes: frozenset[str]) -> TokenResult:
        """A data token for the registration's Moneyhub user, limited to the mapped ``scopes``.

        The token (client credentials with ``sub``, seed 001) reaches every connection of the
        user, so it is released only after a fresh look at them: the connection must be healthy,
        and any other connection the token would reach beyond what is registered here is deleted
        first (``users.reconcile``; no token when that fails). A held refresh token is renewed
        first, so a revoked grant surfaces here.
        """
        wanted = moneyhub_scopes(scopes)
        if not wanted:
            raise UpstreamError("No Moneyhub data scope matches what the app was granted.")
        user_id = _user_of(registration)
        listed = self.users.connections(user_id, fresh=True)
        report = connections.status_of(_find(listed, registration.external_id), self.clock())
        if report.status == "reauth_required":
            raise ReauthRequired(report.error or connections.GONE)
        if report.status == "expired":
            raise ConsentExpired(report.error or "The consent at Moneyhub has expired.")
        if report.status != "ok":
            raise UpstreamError(report.error or "Moneyhub reports a problem with this connection.")
        self.users.reconcile(registration, listed)
        new_secrets = self._renew_grant(registration)
        return TokenResult(self._data_token(user_id, wanted), secrets=new_secrets)

    def _renew_grant(self, registration: Registration) -> dict[str, Any] | None:
        """RFC 6749 §6 refresh when the registration holds a refresh token (offline_access)."""
        refresh_token = registration.secrets.get("refresh_token")
        if not refresh_token:
            return None
        try:
            body = self.identity.refresh(refresh_token)
        except OAuthRefusal as failure:
            if failure.error == "invalid_grant":
                raise ReauthRequired("Moneyhub no longer honours this connection's grant; "
                                     "reconnect it.") from None
            raise UpstreamError(failure.explain("renew the connection's grant")) from None
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated != refresh_token:
            return {**registration.secrets, "refresh_token": rotated}
        return None

    def _data_token(self, user_id: str, scopes: tuple[str, ...]) -> UpstreamToken:
        """Client credentials with ``sub`` (seed 001). Not cached here: the core caches each
        registration's tokens, and a token an app reported as rejected must be a new one."""
        try:
            body = self.identity.client_credentials(scopes, sub=user_id)
        except OAuthRefusal as failure:
            if failure.error in ("invalid_grant", "invalid_request"):
                raise ReauthRequired("Moneyhub no longer knows this connection's profile; "
                                     "connect the bank again.") from None
            raise UpstreamError(failure.explain("issue a data token")) from None
        expires_in = int(body.get("expires_in") or 0)
        return UpstreamToken(body["access_token"], int(self.clock()) + expires_in, "Bearer",
                             body.get("scope") or " ".join(scopes))

    # ------------------------------------------------------------------ payments

    def check_payment(self, payment: PaymentRequest,
                      registration: Registration | None = None) -> None:
        """GBP, a positive amount in whole pence, references of at most 18 characters (from any
        connection: Moneyhub's payment journey picks the account at the bank)."""
        payments.check(payment)

    def begin_payment(
        self, registration: Registration, payment: PaymentRequest, *, state: str
    ) -> LinkStart:
        """The payee (created once per creditor account), then the ``mh:payment`` claim in a
        signed request object for the registration's bank and Moneyhub user (seed 001)."""
        payments.check(payment)  # before anything leaves the process
        user_id = _user_of(registration)
        bank_id = registration.metadata.get("bank_id")
        if not isinstance(bank_id, str) or not bank_id:
            raise InvalidPaymentRequest("This connection names no bank to pay from.")
        response_type = self.settings.response_type  # both configurable types have a code

        def start(payee_id: str) -> tuple[str, str, str | None]:
            params = {"response_type": response_type, "scope": f"openid payment id:{bank_id}",
                      "claims": payments.claims(user_id, payee_id, payment)}
            return self.authorization(params, state=state, action="start the payment")

        payee_id, remembered = self.payments.payee_id(payment)
        try:
            url, nonce, verifier = start(payee_id)
        except UpstreamUnavailable:
            raise
        except UpstreamError:
            if not remembered:
                raise
            # the remembered payee may have been deactivated in Moneyhub's admin portal since
            url, nonce, verifier = start(self.payments.payee_id(payment, recheck=True)[0])
        return LinkStart(url, {"journey": "payment", "response_type": response_type,
                               "nonce": nonce, "code_verifier": verifier, "user_id": user_id})

    def complete_payment(
        self, registration: Registration, params: Mapping[str, str], remember: Mapping[str, Any]
    ) -> PaymentResult:
        """Exchange the code (which is what completes the payment at Moneyhub), verify the
        id_token and read the payment id from its ``mh:payment``; then its status."""
        _raise_for_error(params, what="payment", denied=PaymentDenied)
        if remember.get("journey") != "payment":
            raise LinkInvalid("This callback belongs to no payment.")
        claims, _ = self._verified_claims(params, remember)
        payment_id = claims.get("mh:payment")
        if not isinstance(payment_id, str) or not payment_id:
            raise LinkInvalid("Moneyhub's id_token names no payment (mh:payment).")
        try:
            return self.payments.status(payment_id)
        except UpstreamError:
            # the payment is made: its id must not be lost because its status is unknown yet
            log.warning("moneyhub payment status unavailable after the payment")
            return PaymentResult(payment_id, "pending")

    def payment_status(self, registration: Registration, payment_id: str) -> PaymentResult:
        """``GET /payments/{id}``, mapped onto pending | completed | rejected | failed."""
        return self.payments.status(payment_id)

    # ------------------------------------------------------------------ lifecycle

    def _connection(self, user_id: str, connection_id: str) -> dict[str, Any] | None:
        """The connection from the user's list (cached briefly; refetched when it seems gone)."""
        found = _find(self.users.connections(user_id), connection_id)
        return found if found is not None else _find(
            self.users.connections(user_id, fresh=True), connection_id)

    def report_statuses(self, person_id: str, user_id: str) -> int:
        """Ask Moneyhub for the user's connections now and report each one's status to the
        core (after a webhook), so apps see a broken connection before the person visits."""
        return sum(self.users.registered(person_id, connection)
                   for connection in self.users.connections(user_id, fresh=True))

    def announce_new_data(self, person_id: str, user_id: str) -> int:
        """Tell the core that the user's connections have new data (``newTransactions``), so
        the apps sharing them get an event; returns how many were registrations here."""
        return sum(self.context.notices.data_changed(person_id, connection["id"])
                   for connection in self.users.connections(user_id))

    def status(self, registration: Registration) -> StatusReport:
        """``GET /users/:id/connections`` mapped onto our statuses (see connections.py)."""
        user_id = registration.metadata.get("moneyhub_user_id")
        if not isinstance(user_id, str):
            return StatusReport("reauth_required", connections.GONE)
        return connections.status_of(
            self._connection(user_id, registration.external_id), self.clock()
        )

    def unlink(self, registration: Registration) -> None:
        """Delete the registration's Moneyhub user (``DELETE /users/:id``), which deletes its
        connection and revokes the bank grant (seed 001). Old model: delete the connection
        (``DELETE /users/:id/connection/:connection-id``), and the shared user with its last
        registration."""
        user_id = registration.metadata.get("moneyhub_user_id")
        if not isinstance(user_id, str):
            return  # never linked to a Moneyhub user: nothing upstream to delete
        if registration.metadata.get(DEDICATED):
            self.users.delete(user_id)
            return
        self.identity.delete_connection(user_id, registration.external_id)
        self.users.forget_connections(user_id)
        self.users.after_unlink(registration, user_id)

    def blueprint(self) -> Blueprint | None:
        """``/plugins/moneyhub/webhooks`` when ``MONEYHUB_WEBHOOK_SECRET`` is set."""
        if not self.settings.webhook_secret:
            return None
        from plugins.moneyhub.webhooks import webhook_blueprint

        return webhook_blueprint(self)


def _find(listed: list[dict[str, Any]], connection_id: str) -> dict[str, Any] | None:
    return next((c for c in listed if c.get("id") == connection_id), None)


def _user_of(registration: Registration) -> str:
    user_id = registration.metadata.get("moneyhub_user_id")
    if not isinstance(user_id, str) or not user_id:
        raise ReauthRequired("This connection has no Moneyhub user; connect the bank again.")
    return user_id


def _raise_for_error(params: Mapping[str, str], *, what: str = "connection",
                     denied: type[UpstreamError] = LinkDenied) -> None:
    """RFC 6749 §4.1.2.1 error responses of a link (or of a payment: ``what``, ``denied``),
    as contract errors."""
    error = params.get("error")
    if not error:
        return
    description = (params.get("error_description") or "")[:200]
    detail = f" ({description})" if description else ""
    if error == "access_denied":
        raise denied(f"The {what} was refused at Moneyhub or the bank{detail}.")
    if error in ERRORS_FOR_LATER:
        raise UpstreamUnavailable(f"Moneyhub could not complete the {what}{detail}; "
                                  "try again later.")
    raise LinkInvalid(f"Moneyhub refused the {what}: {error[:60]}{detail}.")
