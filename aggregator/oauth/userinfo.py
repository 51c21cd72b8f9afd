"""The UserInfo endpoint (OIDC Core §5.3) behind a Bearer token (RFC 6750), or a DPoP-bound
token with its proof (RFC 9449 §7).

Answers the pairwise ``sub`` and the person claims asked for with the ``claims`` parameter
(``preferred_username``). Errors carry the RFC 6750 §3 ``WWW-Authenticate`` challenge.
"""

from __future__ import annotations

from flask import jsonify, request

from aggregator.errors import InsufficientScope, InvalidBearerToken, InvalidRequest
from aggregator.oauth import dpop
from aggregator.oauth.blueprints import api
from aggregator.oauth.id_token import pairwise_subject, person_claims
from aggregator.oauth.params import FORM
from aggregator.oauth.scopes import OPENID
from aggregator.security import csrf_exempt, no_store
from aggregator.services import services


@api.route("/userinfo", methods=["GET", "POST"])
@csrf_exempt  # Bearer-authenticated; no cookies involved
def userinfo():
    no_store()
    svc = services()
    scheme, token = _access_token()
    record = svc.store.tokens.find_access_token(token)
    if record is None:
        raise InvalidBearerToken("The access token is invalid, expired or revoked.")
    dpop.check_presentation(svc, scheme=scheme, token=token, jkt=record.jkt,
                            client_id=record.client_id, endpoint_url=svc.endpoints.userinfo)
    client = svc.store.clients.get(record.client_id)
    if record.person_id is None or client is None or OPENID not in record.scopes:
        raise InsufficientScope("This token was not issued with the openid scope.", scope=OPENID)
    body = {"sub": pairwise_subject(client, record.person_id)}
    body.update(person_claims(svc, record.person_id, record.claims, "userinfo"))
    return jsonify(body)


def _access_token() -> tuple[str, str]:
    """The scheme (``bearer`` or ``dpop``) and the token: RFC 6750 §2.1 or RFC 9449 §7.1 header,
    or RFC 6750 §2.2 form body; never both, never the query (RFC 6750 §2.3, §5.3)."""
    header = request.headers.get("Authorization", "")
    in_body = request.method == "POST" and request.mimetype == FORM and "access_token" in request.form
    if header and in_body:
        raise InvalidRequest("Send the access token once (RFC 6750 §2).")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not token.strip():
            raise InvalidBearerToken("Use the Bearer or DPoP scheme.")
        return scheme.lower(), token.strip()
    if in_body:
        return "bearer", request.form["access_token"]
    raise InvalidBearerToken("An access token is required.", with_code=False)
