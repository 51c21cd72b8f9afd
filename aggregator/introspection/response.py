"""The introspection response: RFC 7662 §2.2 members plus the ``institutions`` of the grant."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aggregator.introspection.freshness import Outcome
from aggregator.introspection.names import order, unique_names
from aggregator.store.grants import Grant
from aggregator.store.registrations import RegistrationRecord
from aggregator.upstream.contract import DATA_SCOPES

if TYPE_CHECKING:
    from aggregator.services import Services

#: RFC 7662 §2.2: the whole answer for a token that is not active, or not the caller's to see
INACTIVE: dict[str, Any] = {"active": False}

#: how long a worker reuses an all-ok ``institutions`` member it has just built
RECENT_SECONDS = 1.0
RECENT_ENTRIES = 4096


@dataclass
class Institutions:
    """The ``institutions`` member, and which registrations' tokens it releases (for audit)."""

    person_id: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: list[tuple[str, str]] = field(default_factory=list)


def data_scopes(token_scope: str, grant: Grant) -> frozenset[str]:
    """What the plugin may ask upstream for: the token's scopes within the grant's, data only."""
    return frozenset(token_scope.split()) & frozenset(grant.scopes) & DATA_SCOPES


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


def institutions(svc: Services, grant: Grant, token_scope: str) -> Institutions:
    """One entry per registration the grant covers, keyed by its (per person unique) name."""
    scopes = data_scopes(token_scope, grant)
    if not scopes or not grant.registration_ids:
        return Institutions(grant.person_id)
    key = (grant.person_id, grant.id, grant.registration_ids, scopes)
    recent = svc.recent_institutions
    found = recent.get(key)
    if found is None:
        found = _build(svc, grant, scopes)
        recent.put(key, found)
    return found


def _build(svc: Services, grant: Grant, scopes: frozenset[str]) -> Institutions:
    result = Institutions(grant.person_id)
    records = svc.store.registrations.list(grant.person_id)
    names = unique_names(records)
    covered = [r for r in records if r.id in grant.registration_ids]
    withheld = _beyond_grant(records, grant)
    outcomes = svc.fresh_tokens.collect(grant.person_id, [r for r in covered if r.id not in withheld], scopes)
    outcomes.update(withheld)
    for record in sorted(covered, key=order):
        outcome = outcomes[record.id]
        result.entries[names[record.id]] = entry(record, outcome)
        if outcome.token is not None:
            result.released.append((record.id, names[record.id]))
    return result


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


def _beyond_grant(records: list[RegistrationRecord], grant: Grant) -> dict[str, Outcome]:
    """Registrations whose upstream token also reaches one the grant does not cover.

    A shared upstream token (``share_group``) is only handed out when the grant covers every
    registration it reaches: never further than what the person ticked.
    """
    groups: dict[str, set[str]] = {}
    for record in records:
        if record.share_group:
            groups.setdefault(record.share_group, set()).add(record.id)
    withheld = {}
    for record in records:
        members = groups.get(record.share_group or "", set())
        if record.id in grant.registration_ids and not members <= grant.registration_ids:
            withheld[record.id] = Outcome(
                "error", None,
                "This institution's access also reaches connections this app was not granted; "
                "the person must update what they share with this app.",
            )
    return withheld
