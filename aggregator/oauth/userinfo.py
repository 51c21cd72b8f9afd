"""The UserInfo endpoint (OIDC Core §5.3) behind a Bearer token (RFC 6750), or a DPoP-bound
token with its proof (RFC 9449 §7).

Answers the pairwise ``sub`` and the person claims asked for with the ``claims`` parameter
(``preferred_username``). Errors carry the RFC 6750 §3 ``WWW-Authenticate`` challenge.
"""

from __future__ import annotations

from flask import jsonify

from aggregator.errors import InsufficientScope
from aggregator.oauth.blueprints import api
from aggregator.oauth.id_token import pairwise_subject, person_claims
from aggregator.oauth.resource import access_token_for
from aggregator.oauth.scopes import OPENID
from aggregator.security import csrf_exempt, no_store
from aggregator.services import services


@api.route("/userinfo", methods=["GET", "POST"])
@csrf_exempt  # Bearer-authenticated; no cookies involved
def userinfo():
    no_store()
    svc = services()
    record = access_token_for(svc, svc.endpoints.userinfo, scope=OPENID)
    client = svc.store.clients.get(record.client_id)
    if record.person_id is None or client is None:
        raise InsufficientScope("This token was not issued to a person with the openid scope.",
                                scope=OPENID)
    body = {"sub": pairwise_subject(client, record.person_id)}
    body.update(person_claims(svc, record.person_id, record.claims, "userinfo"))
    return jsonify(body)
