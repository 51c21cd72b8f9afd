"""Token revocation (RFC 7009), read as its steps:

1. a form body; authenticate the client          §2.1
2. find the token (the hint only orders the search)   §2.1
3. only the client it was issued to may revoke it     §2.1
4. a refresh token takes the access tokens of its authorization with it   §2.1
5. 200 whether or not the token was known             §2.2
"""

from __future__ import annotations

from aggregator.errors import UnauthorizedClient
from aggregator.oauth.blueprints import api
from aggregator.oauth.params import require
from aggregator.oauth.steps import client_request
from aggregator.security import csrf_exempt
from aggregator.services import Services, services
from aggregator.store.clients import ClientRecord


@api.post("/revoke")
@csrf_exempt  # client-authenticated; no cookies involved
def revoke():
    svc = services()
    params, client = client_request(svc.endpoints.revocation)
    token = require(params, "token")
    if params.get("token_type_hint") == "refresh_token":
        _revoke_refresh(svc, client, token) or _revoke_access(svc, client, token)
    else:
        _revoke_access(svc, client, token) or _revoke_refresh(svc, client, token)
    return "", 200


def _revoke_access(svc: Services, client: ClientRecord, token: str) -> bool:
    record = svc.store.tokens.find_access_token(token)
    if record is None:
        return False
    _own(client, record.client_id)
    svc.store.tokens.revoke_access_token(record)
    return True


def _revoke_refresh(svc: Services, client: ClientRecord, token: str) -> bool:
    record = svc.store.tokens.find_refresh_token(token)
    if record is None:
        return False
    _own(client, record.client_id)
    svc.store.tokens.revoke_refresh_token(record)
    if record.family and record.person_id:
        svc.store.tokens.revoke_family(record.person_id, record.family)
    return True


def _own(client: ClientRecord, issued_to: str) -> None:
    if issued_to != client.client_id:
        raise UnauthorizedClient("This token was not issued to you.")
