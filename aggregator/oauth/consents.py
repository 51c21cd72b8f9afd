"""Grants from the provider's side: the consent a person gave an app, and ending it.

Ending a grant deletes it first (its tokens fail their lookup from that instant), then
deletes its tokens.
"""

from __future__ import annotations

from aggregator.services import Services
from aggregator.store.grants import Grant


def covering_grant(svc: Services, client_id: str, person_id: str, scopes: tuple[str, ...]) -> Grant | None:
    """An existing grant of this person to this client that already covers ``scopes``."""
    for grant in svc.store.grants.find(person_id, client_id):
        if set(scopes) <= set(grant.scopes):
            return grant
    return None


def record_consent(svc: Services, client_id: str, person_id: str, scopes: tuple[str, ...],
                   registration_ids: frozenset[str] | None) -> Grant:
    """Store what the person allowed: one grant per person and app, updated on a new consent.

    ``registration_ids`` replaces the institutions covered; None (no data scope was asked)
    keeps them. Scopes accumulate, so an app asking again for less needs no new consent.
    """
    existing = svc.store.grants.find(person_id, client_id)
    if existing:
        grant = existing[0]
        merged = tuple(dict.fromkeys(grant.scopes + scopes))
        regs = grant.registration_ids if registration_ids is None else registration_ids
        return svc.store.grants.update(grant, merged, regs)
    grant = svc.store.grants.create(client_id, person_id, scopes, registration_ids or frozenset())
    svc.store.clients.remember_grant(client_id, person_id, grant.id)
    return grant


def end_grant(svc: Services, grant: Grant) -> bool:
    """Revoke a grant and every token issued under it."""
    removed = svc.store.grants.delete(grant.person_id, grant.id)
    svc.store.tokens.revoke_grant_tokens(grant.person_id, grant.id)
    svc.store.clients.forget_grant(grant.client_id, grant.person_id, grant.id)
    return removed
