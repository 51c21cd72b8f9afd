"""What the dashboard shows: the person's registrations and the apps they granted."""

from __future__ import annotations

from typing import Any

from aggregator.services import services
from aggregator.store.people import PersonRecord


def dashboard_context(person: PersonRecord) -> dict[str, Any]:
    from aggregator.introspection.audit import recent_activity
    from aggregator.oauth.app_access import revoke_url

    store = services().store
    registrations = store.registrations.list(person.id)
    names = {r.id: r.institution_name for r in registrations}
    grants = []
    for grant in store.grants.for_person(person.id):
        client = store.clients.get(grant.client_id)
        grants.append({
            "grant": grant,
            "client_name": client.display_name if client else None,
            "institutions": sorted(names.get(rid, "?") for rid in grant.registration_ids),
            "revoke_url": revoke_url(grant.id),
        })
    notices = [
        {"notice": notice, "institution": names.get(notice.registration_id or "")}
        for notice in store.notices.for_person(person.id, limit=10)
    ]
    providers = {name: plugin.display_name for name, plugin in services().plugins.items()}
    return {"registrations": registrations, "grants": grants, "providers": providers,
            "activity": recent_activity(person.id, limit=10), "notices": notices}
