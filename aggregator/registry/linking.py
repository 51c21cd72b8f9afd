"""The registration lifecycle, independent of HTTP: begin, complete, reconnect, remove.

State for a pending link is kept in Redis (encrypted, single use, ten minutes) and bound to the
person and to their browser session, so a callback replayed, forged or opened in another browser
finds nothing to complete. Nothing is stored unless the plugin's ``complete_link`` succeeds.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.crypto import constant_time_equals, new_token
from aggregator.services import Services
from aggregator.store.people import PersonRecord
from aggregator.store.registrations import RegistrationRecord
from aggregator.upstream.contract import (
    InvalidLinkOptions,
    LinkInvalid,
    ReauthRequired,
    UpstreamError,
    UpstreamPlugin,
    UpstreamUnavailable,
)

log = logging.getLogger("aggregator.registry")

@dataclass(frozen=True)
class PendingLink:
    redirect_url: str
    state: str


def plugin_for(svc: Services, provider: str) -> UpstreamPlugin:
    plugin = svc.plugins.get(provider)
    if plugin is None:
        raise InvalidLinkOptions(f"There is no provider called {provider!r} here.")
    return plugin


def begin_link(
    svc: Services,
    person: PersonRecord,
    session_binding: str,
    provider: str,
    institution_id: str,
    *,
    reconnect: RegistrationRecord | None = None,
    return_to: str = "/connections",
) -> PendingLink:
    """Ask the plugin where to send the browser and remember what the callback will need."""
    plugin = plugin_for(svc, provider)
    if reconnect is None:
        known = {institution.id for institution in plugin.institutions()}
        if institution_id not in known:
            # never pair an institution with a provider that does not offer it
            raise InvalidLinkOptions(f"{plugin.display_name} does not offer that institution.")
    state = new_token()
    view = svc.store.registrations.plugin_view(reconnect, person.as_person()) if reconnect else None
    start = plugin.begin_link(person.as_person(), institution_id, state=state, reconnect=view)
    svc.store.link_states.put(state, {
        "person_id": person.id,
        "binding": session_binding,
        "provider": provider,
        "institution_id": institution_id,
        "remember": start.remember,
        "reconnect": reconnect.id if reconnect else None,
        "return_to": return_to,
    })
    log.info("link started", extra={"provider": provider, "person_id": person.id})
    return PendingLink(start.redirect_url, state)


def complete_link(
    svc: Services,
    person: PersonRecord,
    session_binding: str,
    provider: str,
    params: Mapping[str, str],
) -> tuple[list[RegistrationRecord], str]:
    """Finish a link from its callback; returns the saved registrations and where to go next."""
    state = params.get("state", "")
    if not state or len(state) > 512:
        raise LinkInvalid("The institution sent us back without the expected state. "
                          "Start the connection again.")
    pending = svc.store.link_states.take(state)
    if pending is None:
        raise LinkInvalid("This connection attempt has expired or was already completed. "
                          "Start the connection again.")
    if (pending["provider"] != provider or pending["person_id"] != person.id
            or not constant_time_equals(pending["binding"], session_binding)):
        raise LinkInvalid("This connection attempt belongs to another session. "
                          "Start the connection again.")
    plugin = plugin_for(svc, provider)
    reconnect = None
    if pending["reconnect"]:
        record = svc.store.registrations.get(person.id, pending["reconnect"])
        if record is None:
            raise LinkInvalid("The connection being renewed was removed meanwhile.")
        reconnect = svc.store.registrations.plugin_view(record, person.as_person())
    linked = plugin.complete_link(person.as_person(), params, pending["remember"], reconnect=reconnect)
    if not linked:
        raise LinkInvalid("The institution did not share any account.")
    saved = []
    for item in linked:
        existing = svc.store.registrations.find_external(person.id, provider, item.external_id)
        target = reconnect.id if reconnect is not None and len(linked) == 1 else existing
        saved.append(svc.store.registrations.save_linked(person.id, provider, item,
                                                         registration_id=target))
    log.info("link completed", extra={"provider": provider, "person_id": person.id,
                                      "registrations": [r.id for r in saved]})
    return saved, pending.get("return_to") or "/connections"


class RemovalFailed(Exception):
    """The upstream grant could not be revoked; the registration is kept (out of every grant)."""


def remove_registration(svc: Services, person: PersonRecord, registration_id: str) -> RegistrationRecord:
    """Revoke upstream, then delete: afterwards no grant covers it and no secret of it remains."""
    record = svc.store.registrations.get(person.id, registration_id)
    if record is None:
        raise KeyError(registration_id)
    # First out of every grant, so no app can obtain a token for it from this moment on.
    svc.store.grants.remove_registration(person.id, record.id)
    plugin = svc.plugins.get(record.provider)
    if plugin is not None:
        try:
            plugin.unlink(svc.store.registrations.plugin_view(record, person.as_person()))
        except ReauthRequired:
            pass  # the upstream grant is already gone: nothing left to revoke
        except UpstreamError as exc:
            svc.store.registrations.set_status(
                record, "error", f"Removal could not reach the institution: {exc.description}"
            )
            raise RemovalFailed(exc.description) from exc
    svc.store.registrations.delete(record)
    log.info("registration removed", extra={"provider": record.provider, "person_id": person.id})
    return record


def refresh_statuses(svc: Services, person: PersonRecord) -> list[RegistrationRecord]:
    """Ask each plugin for the health of the person's registrations and store what changed."""
    records = svc.store.registrations.list(person.id)
    updated = []
    for record in records:
        plugin = svc.plugins.get(record.provider)
        if plugin is None:
            updated.append(record)
            continue
        try:
            report = plugin.status(svc.store.registrations.plugin_view(record, person.as_person()))
        except UpstreamUnavailable:
            updated.append(record)
            continue
        except UpstreamError as exc:
            svc.store.registrations.set_status(record, exc.status, exc.description)
        else:
            if (report.status, report.error) != (record.status, record.error) or (
                report.consent_expires_at and report.consent_expires_at != record.consent_expires_at
            ):
                svc.store.registrations.set_status(record, report.status, report.error,
                                                   report.consent_expires_at)
        updated.append(svc.store.registrations.get(person.id, record.id) or record)
    return updated


def session_binding(session) -> str:
    """A random value kept in the browser session that pending links are bound to."""
    binding = session.get("link_binding")
    if not binding:
        binding = secrets.token_urlsafe(16)
        session["link_binding"] = binding
    return binding
