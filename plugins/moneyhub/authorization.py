"""What we ask Moneyhub for: scopes, claims and consent, checked before anything is sent.

Seed 001 ("Scopes", "Claims", "Connection lifecycle") and seed 003 (``mh:consent``). A request
breaking a rule raises :class:`InvalidLinkOptions` here, so Moneyhub never sees it and the person
is never redirected.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aggregator.upstream.contract import InvalidLinkOptions

Journey = Literal["connect", "reauth", "refresh"]

MAX_CONSENT_DAYS = 90
MAX_HISTORY_MONTHS = 72
CHOOSER_SCOPES: frozenset[str] = frozenset({"id:all", "id:api", "id:legacy", "id:test"})
#: seed 003: requested unless ``permissionsAction`` is ``replace``
DEFAULT_PERMISSIONS: frozenset[str] = frozenset({
    "ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail",
    "ReadTransactionsCredits", "ReadTransactionsDebits", "ReadProducts",
})
PERMISSIONS: frozenset[str] = DEFAULT_PERMISSIONS | {
    "ReadStandingOrdersBasic", "ReadStandingOrdersDetail", "ReadBeneficiariesDetail",
    "ReadStatementsBasic", "ReadStatementsDetail",
}


@dataclass(frozen=True)
class Consent:
    """The ``mh:consent`` claim value (seed 003); ``None`` members are left to Moneyhub."""

    expiration: datetime | None = None
    transaction_from: datetime | None = None
    permissions: tuple[str, ...] = ()
    permissions_action: str | None = None

    def check(self, now: datetime) -> None:
        """Seed 003's rules; raises :class:`InvalidLinkOptions` naming the broken one."""
        if self.expiration is not None:
            if self.expiration <= now:
                raise InvalidLinkOptions("The consent's expiry date must be in the future.")
            if self.expiration > now + timedelta(days=MAX_CONSENT_DAYS):
                raise InvalidLinkOptions(
                    f"Moneyhub consents last at most {MAX_CONSENT_DAYS} days; "
                    "choose an earlier expiry date."
                )
        if self.transaction_from is not None:
            if self.transaction_from > now:
                raise InvalidLinkOptions("Transactions cannot be requested from a future date.")
            if self.transaction_from < months_before(now, MAX_HISTORY_MONTHS):
                raise InvalidLinkOptions(
                    f"Moneyhub reads at most {MAX_HISTORY_MONTHS} months of transactions."
                )
        unknown = set(self.permissions) - PERMISSIONS
        if unknown:
            raise InvalidLinkOptions(f"Unknown Moneyhub permission(s): {', '.join(sorted(unknown))}.")
        if self.permissions_action not in (None, "replace"):
            raise InvalidLinkOptions("permissionsAction can only be 'replace'.")
        effective = self.effective_permissions
        if self.permissions_action == "replace" and not effective & {
            "ReadAccountsBasic", "ReadAccountsDetail"
        }:
            raise InvalidLinkOptions(
                "Replacing Moneyhub's permissions needs ReadAccountsBasic or ReadAccountsDetail."
            )
        if "ReadTransactionsDetail" in effective and not effective & {
            "ReadTransactionsCredits", "ReadTransactionsDebits"
        }:
            raise InvalidLinkOptions(
                "ReadTransactionsDetail needs ReadTransactionsCredits or ReadTransactionsDebits."
            )

    @property
    def effective_permissions(self) -> frozenset[str]:
        if self.permissions_action == "replace":
            return frozenset(self.permissions)
        return DEFAULT_PERMISSIONS | set(self.permissions)

    def claim_value(self) -> dict[str, Any] | None:
        value: dict[str, Any] = {}
        if self.expiration is not None:
            value["expirationDateTime"] = _iso(self.expiration)
        if self.transaction_from is not None:
            value["transactionFromDateTime"] = _iso(self.transaction_from)
        if self.permissions:
            value["permissions"] = list(self.permissions)
        if self.permissions_action is not None:
            value["permissionsAction"] = self.permissions_action
        return value or None


@dataclass(frozen=True)
class AuthorizationRequest:
    """The parameters of one request object, before signing.

    ``scopes`` is the full scope list: ``openid`` plus, for a new connection, ``offline_access``
    optionally and exactly one financial-institution scope; for a lifecycle journey, ``reauth``
    or ``refresh`` and nothing else.
    """

    scopes: tuple[str, ...]
    user_id: str
    response_type: str
    connection_id: str | None = None
    consent: Consent | None = None
    category_type: str | None = None

    @property
    def journey(self) -> Journey:
        if "reauth" in self.scopes:
            return "reauth"
        return "refresh" if "refresh" in self.scopes else "connect"

    @property
    def bank_scope(self) -> str | None:
        return next((s for s in self.scopes if s.startswith("id:")), None)

    def check(self, now: datetime) -> None:
        """Every rule Moneyhub would enforce, so a wrong request never leaves the process."""
        scopes = list(self.scopes)
        if len(set(scopes)) != len(scopes):
            raise InvalidLinkOptions("A scope is repeated.")
        if "openid" not in scopes:
            raise InvalidLinkOptions("The openid scope is required.")
        lifecycle = {"reauth", "refresh"} & set(scopes)
        if lifecycle:
            # seed 001: only openid may (and must) accompany reauth or refresh
            if len(lifecycle) > 1 or set(scopes) != {"openid", *lifecycle}:
                raise InvalidLinkOptions("reauth and refresh go with openid and nothing else.")
            if not self.connection_id:
                raise InvalidLinkOptions("Renewing a connection needs its Moneyhub connection id.")
        else:
            banks = [s for s in scopes if s.startswith("id:")]
            if len(banks) != 1:
                # seed 001: the financial-institution scopes are mutually exclusive
                raise InvalidLinkOptions(
                    "Exactly one financial institution (id:...) must be chosen, not "
                    f"{len(banks)}."
                )
            if banks[0] == "id:":
                raise InvalidLinkOptions("The financial institution scope names no bank.")
            others = set(scopes) - {"openid", "offline_access", banks[0]}
            if others:
                raise InvalidLinkOptions(f"Unexpected scope(s): {' '.join(sorted(others))}.")
        if self.response_type not in ("code", "code id_token", "id_token"):
            raise InvalidLinkOptions(f"Unsupported response type {self.response_type!r}.")
        if self.category_type not in (None, "personal", "business"):
            raise InvalidLinkOptions("mh:cat_type must be personal or business.")
        if self.consent is not None:
            self.consent.check(now)

    def claims(self) -> dict[str, Any]:
        """The OIDC ``claims`` parameter (Core §5.5) as seed 001 wants it."""
        id_token: dict[str, Any] = {"sub": {"essential": True, "value": self.user_id}}
        if self.journey == "connect":
            id_token["mh:con_id"] = {"essential": True}
        else:
            id_token["mh:con_id"] = {"essential": True, "value": self.connection_id}
        consent = self.consent.claim_value() if self.consent else None
        if consent is not None:
            id_token["mh:consent"] = {"essential": True, "value": consent}
        if self.category_type is not None:
            id_token["mh:cat_type"] = {"essential": True, "value": self.category_type}
        return {"id_token": id_token}


def months_before(moment: datetime, months: int) -> datetime:
    """The same day ``months`` earlier (clamped to the month's length)."""
    years, month_index = divmod(moment.month - 1 - months, 12)
    year, month = moment.year + years, month_index + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
