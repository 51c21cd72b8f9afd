"""Grant management for the client that holds a grant (FAPI Grant Management, query and revoke).

``GET /grants/<grant_id>`` answers the scopes, and per institution what the grant allows as
RFC 9396 ``authorization_details``;
``DELETE`` revokes it with every token issued under it. Another client's grant, or an unknown
one, is ``404``: a client learns nothing about grants it does not hold.
"""

from __future__ import annotations

from flask import jsonify, request

from aggregator.errors import GrantNotFound
from aggregator.oauth.authorization_details import granted_details
from aggregator.oauth.blueprints import api
from aggregator.oauth.consents import end_grant
from aggregator.oauth.steps import client_request
from aggregator.registry.names import unique_names
from aggregator.security import csrf_exempt
from aggregator.services import Services, services
from aggregator.store.grants import Grant


@api.route("/grants/<grant_id>", methods=["GET", "DELETE"])
@csrf_exempt  # client-authenticated; no cookies involved
def grant(grant_id: str):
    svc = services()
    client = client_request(svc.endpoints.grant(grant_id)).client
    found = svc.store.grants.get(grant_id) if len(grant_id) <= 100 else None
    if found is None or found.client_id != client.client_id:
        raise GrantNotFound("There is no such grant for this client.")
    if request.method == "DELETE":
        end_grant(svc, found)
        return "", 204
    return jsonify(grant_document(svc, found))


def grant_document(svc: Services, grant: Grant) -> dict:
    """The grant as its client may see it: scopes, per institution what it may read (as
    RFC 9396 ``authorization_details``), and each institution's provider and status."""
    everyone = svc.store.registrations.list(grant.person_id)  # names are unique over all of them
    names = unique_names(everyone)
    records = [r for r in everyone if r.id in grant.pairs]
    return {
        "grant_id": grant.id,
        "client_id": grant.client_id,
        "scopes": [{"scope": grant.scope}],
        "authorization_details": granted_details({r.id: grant.pairs[r.id] for r in records}, names),
        "institutions": [{"registration_id": r.id, "name": names[r.id], "provider": r.provider,
                          "status": r.status} for r in sorted(records, key=lambda r: r.id)],
        "created_at": grant.created_at,
        "updated_at": grant.updated_at,
    }
