"""The person's side of grants, from the dashboard: narrowing what an app may read, or revoking
it. A change applies to the app's very next introspection (tokens are bounded by the grant as it
is now) and is recorded in the person's audit trail."""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from aggregator.accounts.current import current_person, login_required
from aggregator.errors import InvalidRequest, NotFound
from aggregator.events import facts
from aggregator.introspection.audit import record_edit
from aggregator.oauth.blueprints import pages
from aggregator.oauth.consent import scope_lines
from aggregator.oauth.consents import end_grant
from aggregator.registry.names import order, unique_names
from aggregator.services import services
from aggregator.store.grants import Grant
from aggregator.store.people import PersonRecord


@pages.post("/apps/<grant_id>/revoke")
@login_required
def revoke_app(grant_id: str):
    """End a grant of the logged-in person: the app's tokens stop working at once."""
    person = current_person()
    assert person is not None
    svc = services()
    grant = _own_grant(person, grant_id)
    client = svc.store.clients.get(grant.client_id)
    end_grant(svc, grant, facts.grant_revoked(grant))
    name = client.display_name if client else "The app"
    flash(f"{name} no longer has access to your data.")
    return redirect(url_for("accounts.dashboard") + "#apps", code=303)


@pages.post("/apps/<grant_id>/edit")
@login_required
def edit_app(grant_id: str):
    """Keep only the (institution, kind of data) boxes the person left ticked (``keep`` values
    ``<registration id> <scope>``); nothing is ever added here."""
    person = current_person()
    assert person is not None
    svc = services()
    grant = _own_grant(person, grant_id)
    kept: dict[str, set[str]] = {}
    for value in request.form.getlist("keep"):
        registration_id, _, scope = value.partition(" ")
        if registration_id not in grant.pairs or scope not in grant.pairs[registration_id]:
            raise InvalidRequest("That choice is no longer on offer. Reload the page and try again.")
        kept.setdefault(registration_id, set()).add(scope)
    keep = {rid: frozenset(s) for rid, s in kept.items()}
    changed = keep != dict(grant.pairs)
    narrowed = svc.store.grants.narrow(grant, keep, facts.grant_changed(grant) if changed else None)
    client = svc.store.clients.get(grant.client_id)
    name = client.display_name if client else "The app"
    removed = _removed(svc.store.registrations.list(person.id), grant, narrowed)
    if removed:
        record_edit(grant.client_id, name, person.id, "; ".join(removed))
        flash(f"{name} can no longer read: {'; '.join(removed)}.")
    return redirect(url_for("accounts.dashboard") + "#apps", code=303)


def _own_grant(person: PersonRecord, grant_id: str) -> Grant:
    grant = services().store.grants.get_for(person.id, grant_id) if len(grant_id) <= 100 else None
    if grant is None:
        raise NotFound("That app no longer has access.")
    return grant


def _removed(registrations, before: Grant, after: Grant) -> list[str]:
    """What an edit took away, in plain words per institution."""
    names = unique_names(registrations)
    removed = []
    for record in sorted(registrations, key=order):
        scopes = before.pairs.get(record.id, frozenset())
        gone = scopes - after.pairs.get(record.id, frozenset())
        if gone:
            what = "everything" if gone == scopes else ", ".join(line.lower() for line in scope_lines(gone))
            removed.append(f"{names[record.id]}: {what}")
    return removed


def revoke_url(grant_id: str) -> str:
    return url_for("oauth_pages.revoke_app", grant_id=grant_id)


def edit_url(grant_id: str) -> str:
    return url_for("oauth_pages.edit_app", grant_id=grant_id)
