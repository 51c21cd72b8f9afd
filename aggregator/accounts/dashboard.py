"""What the dashboard shows: the person's registrations and the apps they granted."""

from __future__ import annotations

from typing import Any

from aggregator.oauth.consent import scope_lines
from aggregator.oauth.payment_initiation import description
from aggregator.oauth.scopes import DESCRIPTIONS, SCOPES_SUPPORTED
from aggregator.registry.names import order, unique_names
from aggregator.services import services
from aggregator.store.people import PersonRecord
from aggregator.upstream.contract import DATA_SCOPES


def dashboard_context(person: PersonRecord) -> dict[str, Any]:
    from aggregator.introspection.audit import recent_activity
    from aggregator.oauth.app_access import edit_url, revoke_url

    store = services().store
    registrations = store.registrations.list(person.id)
    names = unique_names(registrations)
    grants = []
    for grant in store.grants.for_person(person.id):
        client = store.clients.get(grant.client_id)
        grants.append({
            "grant": grant,
            "client_name": client.display_name if client else None,
            # per institution, what the app may read there, each a box the person can untick
            "institutions": [
                {"name": names[record.id], "provider": record.provider,
                 "kinds": [{"value": f"{record.id} {scope}", "label": DESCRIPTIONS[scope]}
                           for scope in SCOPES_SUPPORTED if scope in grant.pairs[record.id]]}
                for record in sorted(registrations, key=order) if record.id in grant.registration_ids
            ],
            "identity": scope_lines(s for s in grant.scopes if s not in DATA_SCOPES),
            "edit_url": edit_url(grant.id),
            "revoke_url": revoke_url(grant.id),
        })
    notices = [
        {"notice": notice, "institution": names.get(notice.registration_id or "")}
        for notice in store.notices.for_person(person.id, limit=10)
    ]
    providers = {name: plugin.display_name for name, plugin in services().plugins.items()}
    return {"registrations": registrations, "grants": grants, "providers": providers,
            "activity": recent_activity(person.id, limit=10), "notices": notices,
            "payments": payments_per_app(person)}


def payments_per_app(person: PersonRecord) -> list[dict[str, Any]]:
    """The person's payments, newest first, grouped by the app they paid."""
    store = services().store
    apps: dict[str, dict[str, Any]] = {}
    for record in store.payments.for_person(person.id):
        if record.client_id not in apps:
            client = store.clients.get(record.client_id)
            apps[record.client_id] = {"client_name": client.display_name if client else "A removed app",
                                      "payments": []}
        apps[record.client_id]["payments"].append({
            "description": description(record.payment), "institution": record.institution,
            "status": record.status, "created_at": record.created_at})
    return list(apps.values())
