"""What the dashboard shows: the person's registrations and the apps they granted."""

from __future__ import annotations

from typing import Any

from aggregator.services import services
from aggregator.store.people import PersonRecord


def dashboard_context(person: PersonRecord) -> dict[str, Any]:
    store = services().store
    registrations = store.registrations.list(person.id)
    names = {r.id: r.institution_name for r in registrations}
    grants = [
        {"grant": grant, "institutions": sorted(names.get(rid, "?") for rid in grant.registration_ids)}
        for grant in store.grants.for_person(person.id)
    ]
    return {"registrations": registrations, "grants": grants}
