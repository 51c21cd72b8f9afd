"""Consent: what an authorization request asks of the person, whether a grant already covers it,
and what the person's answer grants.

The unit of consent is the (institution, data scopes) pair. An app's request, by scope or by
RFC 9396 ``authorization_details``, asks for data scopes at some or all of the person's
institutions (:func:`asked_pairs`). A consent page decides exactly the pairs it shows: a ticked
institution is granted what was asked of it there, an unticked one is not (and loses it if it
had it); pairs the page did not show stay as they were (:meth:`GrantRepository.merge`).
Grant Management ``replace`` makes the grant exactly this page's answer.

Every token is bounded twice: by the pairs of the consent it came from (fixed in the code and
carried through refreshes) and by the grant as it is now (so removals and the person's edits
apply at once). An older token never reaches what a later consent added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aggregator.errors import GrantNotFound
from aggregator.oauth.authorization_request import AuthorizationRequest
from aggregator.oauth.claims import PERSONAL_CLAIMS, asked_claims
from aggregator.oauth.scopes import OFFLINE_ACCESS, OPENID
from aggregator.registry.names import unique_names
from aggregator.services import Services
from aggregator.store.clients import ClientRecord
from aggregator.store.grants import Grant, Pairs
from aggregator.store.people import PersonRecord
from aggregator.store.registrations import RegistrationRecord


@dataclass(frozen=True)
class ConsentRequest:
    """One authorization request as the person's consent sees it."""

    authorization: AuthorizationRequest
    #: the person's registrations, and their names as apps see them
    registrations: tuple[RegistrationRecord, ...]
    names: Mapping[str, str]
    #: registration id -> the data scopes asked for it (only those asked anything)
    asked: Mapping[str, frozenset[str]]
    #: the grant this consent would add to or replace (None: a new grant)
    grant: Grant | None

    @property
    def wants_data(self) -> bool:
        return bool(self.authorization.data_asks)

    @property
    def claims(self) -> frozenset[str]:
        """The personal claims asked for (shown by name, released only once allowed)."""
        return asked_claims(self.authorization.claims)

    def relevant(self) -> frozenset[str]:
        """The asked registrations this app's grant already shares."""
        if self.grant is None:
            return frozenset()
        return frozenset(rid for rid in self.asked if rid in self.grant.registration_ids)

    def covered(self) -> bool:
        """Whether the grant already allows everything asked, so no consent page is needed.

        Every institution the grant shares that the request reaches must already be shared for
        every scope asked of it (so a token never quietly reaches less, or more, than the person
        agreed for these scopes), and a data request must reach at least one of them.
        """
        grant = self.grant
        if grant is None:
            return False
        identity = {OPENID, OFFLINE_ACCESS} & set(self.authorization.all_scopes)
        if not identity <= set(grant.scopes) or not self.claims <= grant.claims:
            return False
        if not self.wants_data:
            return True
        relevant = self.relevant()
        return bool(relevant) and all(self.asked[rid] <= grant.pairs[rid] for rid in relevant)

    def preselected(self) -> frozenset[str]:
        """What the page ticks: everything on a first consent; later, the institutions already
        shared with this app for what is asked of them now."""
        if self.grant is None:
            return frozenset(self.asked)
        return frozenset(rid for rid in self.relevant() if self.asked[rid] <= self.grant.pairs[rid])


def consent_request(svc: Services, client: ClientRecord, person: PersonRecord,
                    authorization: AuthorizationRequest) -> ConsentRequest:
    """Everything the consent decision needs, read once."""
    registrations = tuple(svc.store.registrations.list(person.id)) if authorization.data_asks else ()
    names = unique_names(registrations)
    asked = asked_pairs(authorization, registrations, names)
    return ConsentRequest(authorization, registrations, names, asked,
                          target_grant(svc, client, person, authorization))


def asked_pairs(authorization: AuthorizationRequest, registrations: Iterable[RegistrationRecord],
                names: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Registration id -> the data scopes the request asks for it."""
    asked: dict[str, frozenset[str]] = {}
    for record in registrations:
        scopes = frozenset().union(*(ask.actions for ask in authorization.data_asks
                                     if ask.covers(names[record.id])))
        if scopes:
            asked[record.id] = scopes
    return asked


def target_grant(svc: Services, client: ClientRecord, person: PersonRecord,
                 authorization: AuthorizationRequest) -> Grant | None:
    """The grant a consent to this request changes (Grant Management §4.1), None for a new one.

    ``merge`` and ``replace`` name their grant, which must be this client's and this person's;
    ``create`` always makes a new one; without an action the app's grant from this person is
    reused (merged into), as one person has one grant per app unless the app asks otherwise.
    """
    action = authorization.grant_management_action
    if action == "create":
        return None
    if action in ("merge", "replace"):
        grant_id = authorization.grant_id or ""
        grant = svc.store.grants.get(grant_id) if len(grant_id) <= 100 else None
        if grant is None or grant.client_id != client.client_id or grant.person_id != person.id:
            raise GrantNotFound("The grant_id is unknown, or not this app's grant from you.")
        return grant
    existing = svc.store.grants.find(person.id, client.client_id)
    return existing[0] if existing else None


def record_consent(svc: Services, client: ClientRecord, person: PersonRecord,
                   consent: ConsentRequest, ticked: frozenset[str]) -> tuple[Grant, Pairs]:
    """Store what the person allowed on the page; returns the grant and the pairs of this consent."""
    granted = {rid: consent.asked[rid] for rid in ticked if rid in consent.asked}
    withdrawn = {rid: scopes for rid, scopes in consent.asked.items() if rid not in granted}
    scopes = consent.authorization.all_scopes
    grants = svc.store.grants
    grant = consent.grant
    if grant is None:
        grant = grants.create(client.client_id, person.id, scopes, granted, consent.claims)
        svc.store.clients.remember_grant(client.client_id, person.id, grant.id)
    elif consent.authorization.grant_management_action == "replace":
        grant = grants.replace(grant, scopes, granted, consent.claims)
    else:
        grant = grants.merge(grant, scopes, granted, withdrawn, consent.claims)
    return grant, token_pairs(grant, granted)


def token_pairs(grant: Grant, wanted: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """What a code issued under ``grant`` may reach: ``wanted`` within the grant."""
    pairs = {rid: scopes & grant.pairs.get(rid, frozenset()) for rid, scopes in wanted.items()}
    return {rid: scopes for rid, scopes in pairs.items() if scopes}


def covered_pairs(consent: ConsentRequest) -> dict[str, frozenset[str]]:
    """For a request the grant already covers: what its code may reach."""
    assert consent.grant is not None
    return token_pairs(consent.grant, {rid: consent.asked[rid] for rid in consent.relevant()})


def released_claims(claims: Mapping[str, dict], grant: Grant) -> dict[str, dict]:
    """The OIDC ``claims`` request without the personal claims the person has not allowed."""
    kept: dict[str, dict] = {}
    for target, members in claims.items():
        allowed = {name: value for name, value in members.items()
                   if name not in PERSONAL_CLAIMS or name in grant.claims}
        if allowed:
            kept[target] = allowed
    return kept


def end_grant(svc: Services, grant: Grant, fact: dict[str, Any] | None = None) -> bool:
    """Revoke a grant and every token issued under it: the grant goes first, so its tokens fail
    their lookup from that instant; then the tokens themselves. ``fact`` (an event for the app,
    :mod:`aggregator.events.facts`) is written with the grant's deletion."""
    removed = svc.store.grants.delete(grant.person_id, grant.id, fact)
    svc.store.tokens.revoke_grant_tokens(grant.person_id, grant.id)
    svc.store.clients.forget_grant(grant.client_id, grant.person_id, grant.id)
    return removed
