"""Deleting a person: revoke every upstream grant, let plugins forget them, erase their slot."""

from __future__ import annotations

from aggregator.oauth.consents import end_grant
from aggregator.registry.linking import RemovalFailed, remove_registration
from aggregator.services import Services
from aggregator.store.people import PersonRecord
from aggregator.upstream.contract import UpstreamError


def delete_person(svc: Services, person: PersonRecord) -> list[str]:
    """Delete ``person`` and everything of theirs; returns upstream problems (data still erased)."""
    problems = []
    for record in svc.store.registrations.list(person.id):
        try:
            remove_registration(svc, person, record.id)
        except (RemovalFailed, KeyError) as exc:
            problems.append(f"{record.institution_name}: {exc}")
    for name, plugin in svc.plugins.items():
        try:
            plugin.forget_person(person.as_person())
        except UpstreamError as exc:
            problems.append(f"{name}: {exc.description}")
    svc.store.sessions.delete_all_for(person.id)
    for grant in svc.store.grants.for_person(person.id):
        end_grant(svc, grant)  # its tokens and the client's index of it go too
    svc.store.people.delete(person)
    return problems
