"""Rich authorization requests (RFC 9396): the one parser of ``authorization_details``, and the
``account_information`` type for data access (``payment_initiation`` is in
:mod:`.payment_initiation`).

An app may ask with scopes, with ``authorization_details``, or both. Each is reduced to the same
thing, a tuple of :class:`DataAsk`: which data scopes (``actions``), and for which of the
person's institutions (``institutions``: names the app knows from a previous introspection;
absent means whichever the person picks). A scope request is one ask for its data scopes.

RFC 9396 §5: an unknown type, a detail that does not conform to its type, or an action we do not
offer is ``invalid_authorization_details``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aggregator import json_input
from aggregator.errors import InvalidAuthorizationDetails
from aggregator.oauth.payment_initiation import PAYMENT_INITIATION, parse_payment
from aggregator.upstream.contract import DATA_SCOPES, PaymentRequest

ACCOUNT_INFORMATION = "account_information"
#: RFC 9396 §10 / RFC 8414: what discovery lists as ``authorization_details_types_supported``
TYPES_SUPPORTED: tuple[str, ...] = (ACCOUNT_INFORMATION, PAYMENT_INITIATION)
#: the members an ``account_information`` detail may carry
_MEMBERS = frozenset({"type", "actions", "institutions"})
#: generous bounds: a person has a handful of institutions, we offer three actions
_MAX_DETAILS = 20
_MAX_NAMES = 50
_MAX_NAME = 200
_MAX_JSON = 8192


@dataclass(frozen=True)
class DataAsk:
    """Data scopes asked for, for the named institutions (None: those the person picks)."""

    actions: frozenset[str]
    institutions: frozenset[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"actions": sorted(self.actions)}
        if self.institutions is not None:
            found["institutions"] = sorted(self.institutions)
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataAsk:
        names = data.get("institutions")
        return cls(frozenset(data["actions"]), frozenset(names) if names is not None else None)

    def covers(self, institution_name: str) -> bool:
        return self.institutions is None or institution_name in self.institutions


@dataclass(frozen=True)
class Details:
    """An ``authorization_details`` parameter: its data asks, or the one payment it asks."""

    data: tuple[DataAsk, ...] = ()
    payment: PaymentRequest | None = None


def parse(value: str | None) -> Details:
    """The ``authorization_details`` parameter (a JSON array, RFC 9396 §2).

    A payment is asked on its own: one ``payment_initiation`` entry and nothing else, so that a
    token issued for a payment never reaches data.
    """
    if value is None or value == "":
        return Details()
    if len(value) > _MAX_JSON:
        raise InvalidAuthorizationDetails("authorization_details is too long.")
    try:
        details = json_input.loads(value, max_bytes=_MAX_JSON)
    except ValueError:
        raise InvalidAuthorizationDetails("authorization_details is not valid JSON.") from None
    if not isinstance(details, list) or not details:
        raise InvalidAuthorizationDetails("authorization_details must be a non-empty JSON array.")
    if len(details) > _MAX_DETAILS:
        raise InvalidAuthorizationDetails("authorization_details has too many entries.")
    kinds = [_type(item) for item in details]
    if PAYMENT_INITIATION not in kinds:
        return Details(data=tuple(_data_ask(item) for item in details))
    if len(details) > 1:
        raise InvalidAuthorizationDetails(
            f"Ask for one {PAYMENT_INITIATION} on its own, with no other authorization detail.")
    return Details(payment=parse_payment(details[0]))


def _type(item: Any) -> str:
    if not isinstance(item, dict):
        raise InvalidAuthorizationDetails("Each authorization detail must be a JSON object.")
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidAuthorizationDetails("Each authorization detail needs a type (RFC 9396 §2).")
    if kind not in TYPES_SUPPORTED:
        raise InvalidAuthorizationDetails(f"Unknown authorization details type {kind[:50]!r}.")
    return kind


def _data_ask(item: dict[str, Any]) -> DataAsk:
    unknown = set(item) - _MEMBERS
    if unknown:
        raise InvalidAuthorizationDetails(
            f"{ACCOUNT_INFORMATION} does not take: {', '.join(sorted(str(u)[:50] for u in unknown))}.")
    actions = item.get("actions")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise InvalidAuthorizationDetails(f"{ACCOUNT_INFORMATION} needs actions: a list of data scopes.")
    outside = sorted(set(actions) - DATA_SCOPES)
    if outside:
        raise InvalidAuthorizationDetails(
            f"Actions not offered: {', '.join(a[:50] for a in outside)} "
            f"(offered: {', '.join(sorted(DATA_SCOPES))}).")
    names = item.get("institutions")
    if names is not None:
        if (not isinstance(names, list) or not names or len(names) > _MAX_NAMES
                or not all(isinstance(n, str) and 0 < len(n) <= _MAX_NAME for n in names)):
            raise InvalidAuthorizationDetails("institutions must be a list of institution names.")
        return DataAsk(frozenset(actions), frozenset(names))
    return DataAsk(frozenset(actions))


def asks_for(data_scopes: Iterable[str], details: tuple[DataAsk, ...]) -> tuple[DataAsk, ...]:
    """Everything a request asks for: its details, plus one ask for its data scopes (if any)."""
    scoped = frozenset(data_scopes) & DATA_SCOPES
    return ((DataAsk(scoped),) if scoped else ()) + details


def granted_details(pairs: Mapping[str, frozenset[str]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """RFC 9396 §7/§9.1: what was granted, one ``account_information`` entry per institution."""
    return [
        {"type": ACCOUNT_INFORMATION, "actions": sorted(pairs[rid]), "registration_id": rid,
         "name": names.get(rid, "")}
        for rid in sorted(pairs, key=lambda rid: (names.get(rid, ""), rid)) if pairs[rid]
    ]
