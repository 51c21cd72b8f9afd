"""The person's side of grants: revoking an app's access from the dashboard."""

from __future__ import annotations

from flask import flash, redirect, url_for

from aggregator.accounts.current import current_person, login_required
from aggregator.errors import NotFound
from aggregator.oauth.blueprints import pages
from aggregator.oauth.consents import end_grant
from aggregator.services import services


@pages.post("/apps/<grant_id>/revoke")
@login_required
def revoke_app(grant_id: str):
    """End a grant of the logged-in person: the app's tokens stop working at once."""
    person = current_person()
    assert person is not None
    svc = services()
    grant = svc.store.grants.get_for(person.id, grant_id) if len(grant_id) <= 100 else None
    if grant is None:
        raise NotFound("That app no longer has access.")
    client = svc.store.clients.get(grant.client_id)
    end_grant(svc, grant)
    name = client.display_name if client else "The app"
    flash(f"{name} no longer has access to your data.")
    return redirect(url_for("accounts.dashboard") + "#apps", code=303)


def revoke_url(grant_id: str) -> str:
    return url_for("oauth_pages.revoke_app", grant_id=grant_id)
