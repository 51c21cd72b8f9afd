"""What the consent page offers and what a person's choice means.

Registrations that share one upstream token (same ``share_group``, e.g. every Moneyhub
connection of the person) are offered as one group: the person shares all of them or none,
because an app given one of them could reach the others through the same token. A partial
choice is refused, never widened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aggregator.oauth.claims import PERSONAL_CLAIMS
from aggregator.oauth.scopes import DESCRIPTIONS, SCOPES_SUPPORTED
from aggregator.store.registrations import RegistrationRecord


class SelectionRefused(Exception):
    """The person's choice cannot be honoured as ticked; the message says what to change."""


@dataclass(frozen=True)
class InstitutionGroup:
    """Registrations offered together: one, or all of a share group."""

    share_group: str | None
    provider: str
    registrations: tuple[RegistrationRecord, ...]

    @property
    def shared(self) -> bool:
        return self.share_group is not None and len(self.registrations) > 1


def scope_lines(scopes: Iterable[str]) -> list[str]:
    """Scopes in plain words, in a stable order."""
    wanted = set(scopes)
    return [DESCRIPTIONS[scope] for scope in SCOPES_SUPPORTED if scope in wanted]


def claim_lines(claims: Iterable[str]) -> list[str]:
    """Personal claims in plain words ("Your username here")."""
    return [PERSONAL_CLAIMS[name] for name in sorted(claims) if name in PERSONAL_CLAIMS]


def institution_groups(registrations: list[RegistrationRecord]) -> list[InstitutionGroup]:
    groups: dict[str, list[RegistrationRecord]] = {}
    order: list[str] = []
    for record in registrations:
        key = f"group:{record.provider}:{record.share_group}" if record.share_group else f"reg:{record.id}"
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(record)
    return [
        InstitutionGroup(groups[key][0].share_group, groups[key][0].provider, tuple(groups[key]))
        for key in order
    ]


def selected_registrations(registrations: list[RegistrationRecord], ticked: list[str]) -> frozenset[str]:
    """The registration ids to grant, checked against the person's own and their groups."""
    own = {record.id for record in registrations}
    chosen = frozenset(ticked)
    unknown = chosen - own
    if unknown:
        raise SelectionRefused("One of the institutions you ticked is no longer connected. "
                               "Review the list and try again.")
    for group in institution_groups(registrations):
        if not group.shared:
            continue
        members = {record.id for record in group.registrations}
        if chosen & members and not members <= chosen:
            names = ", ".join(record.institution_name for record in group.registrations)
            raise SelectionRefused(
                f"{names} are reached through one shared connection, so they can only be "
                "shared together. Tick all of them or none of them."
            )
    return chosen
