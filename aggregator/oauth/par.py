"""The pushed authorization request endpoint (RFC 9126), read as its steps:

1. no caching; a form body with one value per parameter     RFC 9126 §2.1
2. authenticate the client                                   RFC 9126 §2
3. no ``request_uri`` inside; a ``request`` object replaces the rest   §2.1, RFC 9101 §5
4. validate exactly as the authorization endpoint would      §2.1 ("MUST validate"),
   and by the profile's rules (redirect URI, response type)  FAPI 2.0 §5.3.2.2
5. a DPoP proof binds the code to its key, as ``dpop_jkt`` does   RFC 9449 §10.1
6. store it under a one-time ``request_uri``; answer 201     §2.2
"""

from __future__ import annotations

from flask import jsonify

from aggregator.errors import InvalidDPoPProof, InvalidRequest
from aggregator.oauth import dpop
from aggregator.oauth.authorization_request import redirect_target, validate, with_request_object
from aggregator.oauth.blueprints import api
from aggregator.oauth.profile import rules
from aggregator.oauth.steps import client_request
from aggregator.security import csrf_exempt
from aggregator.services import services
from aggregator.store.par import PAR_TTL

#: client authentication parameters: not part of the authorization request itself
_CLIENT_AUTH = ("client_secret", "client_assertion", "client_assertion_type")


@api.post("/par")
@csrf_exempt  # client-authenticated; no cookies involved
def pushed_authorization_request():
    svc = services()
    params, client = client_request(svc.endpoints.par)
    if "request_uri" in params:
        raise InvalidRequest("request_uri cannot be pushed (RFC 9126 §2.1).")
    params = {name: value for name, value in params.items() if name not in _CLIENT_AUTH}
    params["client_id"] = client.client_id
    params = with_request_object(svc, client, params)
    jkt = dpop.proof(svc, client_id=client.client_id, endpoint_url=svc.endpoints.par)
    if jkt is not None and params.setdefault("dpop_jkt", jkt) != jkt:  # RFC 9449 §10.1
        raise InvalidDPoPProof("dpop_jkt is not the thumbprint of the DPoP proof's key.")
    target = redirect_target(svc, client, params)
    rules(svc.settings).check_request(params)
    validate(client, params, target)
    request_uri = svc.store.pushed_requests.push(client.client_id, params, PAR_TTL)
    return jsonify({"request_uri": request_uri, "expires_in": PAR_TTL}), 201
