"""The introspection response: RFC 7662 §2.2 members plus the ``institutions`` of the grant."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aggregator.introspection.freshness import Outcome
from aggregator.oauth.authorization_details import ACCOUNT_INFORMATION
from aggregator.registry.names import order, unique_names
from aggregator.store.grants import Grant, effective_pairs
from aggregator.store.registrations import RegistrationRecord
from aggregator.store.tokens import AccessTokenRecord

if TYPE_CHECKING:
    from aggregator.services import Services

#: RFC 7662 §2.2: the whole answer for a token that is not active, or not the caller's to see
INACTIVE: dict[str, Any] = {"active": False}

#: why an entry with a DPoP-bound upstream token carries no token (docs/introspection.md)
UPSTREAM_DPOP = ("The institution bound its token to a DPoP key that only this authorization server "
                 "holds (RFC 9449), so an app could not use it; it is not handed out.")

#: how long a worker reuses an all-ok ``institutions`` member it has just built
RECENT_SECONDS = 1.0
RECENT_ENTRIES = 4096


@dataclass
class Institutions:
    """The ``institutions`` member, and which registrations' tokens it releases (for audit)."""

    person_id: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: list[tuple[str, str]] = field(default_factory=list)
    #: RFC 9396 §9.1: what the token was granted, one entry per institution
    details: list[dict[str, Any]] = field(default_factory=list)


class RecentInstitutions:
    """Per worker process: the ``institutions`` members built in the last second, by grant.

    An app polling introspection gets the same fresh tokens without re-reading every
    registration and cached token. Only answers whose every entry is ``ok`` are kept, for at
    most :data:`RECENT_SECONDS` and never past their tokens' freshness. The key holds the
    grant's exact registrations and scopes, and the token and grant are looked up on every
    request, so revoking a token or a grant, or taking a registration out of it, shows at once;
    a change to a registration itself (reconnected, failed elsewhere) shows within a second.
    """

    def __init__(self, freshness: int, seconds: float = RECENT_SECONDS,
                 size: int = RECENT_ENTRIES) -> None:
        self.freshness = freshness
        self.seconds = seconds
        self.size = size
        self._items: OrderedDict[tuple, tuple[float, Institutions]] = OrderedDict()
        self._mutex = threading.Lock()

    def get(self, key: tuple) -> Institutions | None:
        with self._mutex:
            item = self._items.get(key)
        if item is None or item[0] <= time.time():
            return None
        return item[1]

    def put(self, key: tuple, found: Institutions) -> None:
        expiries = [e.get("expires_at") for e in found.entries.values()]
        if not expiries or any(e is None for e in expiries):
            return  # something needs attention: the next request looks again
        until = min(time.time() + self.seconds, min(expiries) - self.freshness)  # type: ignore[type-var]
        with self._mutex:
            self._items[key] = (until, found)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def institutions(svc: Services, grant: Grant, record: AccessTokenRecord, *,
                 recent: bool = True) -> Institutions:
    """One entry per registration the token reaches, keyed by its (per person unique) name.

    What a token reaches is its own consent's pairs within the grant as it is now
    (:func:`aggregator.oauth.consents.effective_pairs`): the person's edits and removals apply
    at once, and a later consent never widens an older token. ``recent=False`` skips this
    worker's last-second answers (an app has just reported one of their tokens refused).
    """
    pairs = effective_pairs(grant, record.pairs, record.scope)
    if not pairs:
        return Institutions(grant.person_id)
    key = (grant.person_id, grant.id, frozenset(pairs.items()))
    found = svc.recent_institutions.get(key) if recent else None
    if found is None:
        found = _build(svc, grant.person_id, pairs)
        svc.recent_institutions.put(key, found)
    return found


def _build(svc: Services, person_id: str, pairs: Mapping[str, frozenset[str]]) -> Institutions:
    result = Institutions(person_id)
    records = svc.store.registrations.list(person_id)
    names = unique_names(records)
    covered = [r for r in records if r.id in pairs]
    wanted, withheld = _within_share_groups(records, pairs)
    outcomes = svc.fresh_tokens.collect(person_id, [(r, wanted[r.id]) for r in covered
                                                    if r.id not in withheld])
    outcomes.update(withheld)
    for record in sorted(covered, key=order):
        outcome = presentable(outcomes[record.id])
        result.entries[names[record.id]] = entry(record, outcome)
        result.details.append({"type": ACCOUNT_INFORMATION, "actions": sorted(pairs[record.id]),
                               "registration_id": record.id, "name": names[record.id]})
        if outcome.token is not None:
            result.released.append((record.id, names[record.id]))
    return result


def presentable(outcome: Outcome) -> Outcome:
    """The outcome as an app can use it: a DPoP-bound upstream token needs proofs of the AS's own
    key (RFC 9449 §7.1), so instead of a token the app could not present, its entry says ``error``."""
    if outcome.token is not None and outcome.token.token_type.lower() == "dpop":
        return Outcome("error", None, UPSTREAM_DPOP)
    return outcome


def entry(record: RegistrationRecord, outcome: Outcome) -> dict[str, Any]:
    """An institution entry: a token when ``ok``, otherwise the status and why (no token)."""
    item: dict[str, Any] = {"endpoint": record.endpoint}
    if outcome.token is not None:
        item.update(access_token=outcome.token.access_token, token_type=outcome.token.token_type,
                    expires_at=outcome.token.expires_at)
    item.update(provider=record.provider, registration_id=record.id, status=outcome.status)
    if outcome.token is None:
        item["error"] = outcome.error or "No token is available for this institution."
    return item


def _within_share_groups(records: list[RegistrationRecord], pairs: Mapping[str, frozenset[str]],
                         ) -> tuple[dict[str, frozenset[str]], dict[str, Outcome]]:
    """The scopes to ask upstream for each registration, and those withheld.

    One upstream token of a share group reaches every registration in it, so it is asked only
    for the scopes the token may use at all of them, and withheld when the token reaches a
    registration it may not use at all: never further than what the person ticked.
    """
    groups: dict[str, list[str]] = {}
    for record in records:
        if record.share_group:
            groups.setdefault(record.share_group, []).append(record.id)
    wanted = dict(pairs)
    withheld: dict[str, Outcome] = {}
    for record in records:
        if record.id not in pairs or not record.share_group:
            continue
        common = frozenset.intersection(*(frozenset(pairs.get(m, ())) for m in groups[record.share_group]))
        if common:
            wanted[record.id] = common
        else:
            withheld[record.id] = Outcome(
                "error", None,
                "This institution's access also reaches connections this app was not granted; "
                "the person must update what they share with this app.",
            )
    return wanted, withheld
