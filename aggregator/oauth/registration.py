"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

``POST /register`` needs the operator's initial access token (``AGGREGATOR_INITIAL_ACCESS_TOKEN``,
RFC 7591 §3); without one configured, registration is closed. Each client then manages itself
at ``/register/<client_id>`` with its registration access token. We keep only digests of that
token, so every read or update answers with a fresh one (RFC 7592 §2.1, §2.2 allow rotation).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from aggregator import json_input
from aggregator.crypto import constant_time_equals, token_hash
from aggregator.errors import (
    InvalidBearerToken,
    InvalidClientMetadata,
    InvalidRequest,
    RegistrationClosed,
)
from aggregator.oauth.blueprints import api
from aggregator.oauth.clients import delete_client, register_client, rotate_registration_token, update_client
from aggregator.security import bearer_token, csrf_exempt, no_store
from aggregator.services import Services, services
from aggregator.store.clients import ClientRecord

#: members a client must not send in an update (RFC 7592 §2.2)
_SERVER_MEMBERS = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
                   "client_id_issued_at")


@api.post("/register")
@csrf_exempt  # authorized by the initial access token; no cookies involved
def register():
    no_store()
    svc = services()
    _check_initial_access_token(svc)
    issued = register_client(svc, _json_body())
    response = jsonify(issued.document(svc))
    response.status_code = 201  # RFC 7591 §3.2.1
    return response


@api.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
@csrf_exempt  # authorized by the registration access token; no cookies involved
def configure(client_id: str):
    no_store()
    svc = services()
    client = _client_for_registration_token(svc, client_id)
    if request.method == "DELETE":
        delete_client(svc, client.client_id)
        return "", 204  # RFC 7592 §2.3
    if request.method == "GET":
        return jsonify(rotate_registration_token(svc, client).document(svc))  # RFC 7592 §2.1
    document = _json_body()
    if document.get("client_id") != client.client_id:  # RFC 7592 §2.2
        raise InvalidRequest("The update must carry this client's client_id.")
    sent = [name for name in _SERVER_MEMBERS if name in document]
    if sent:
        raise InvalidRequest(f"Do not send {', '.join(sent)} in an update (RFC 7592 §2.2).")
    secret = document.get("client_secret")
    if secret is not None and not (client.client_secret_hash and isinstance(secret, str)
                                   and constant_time_equals(token_hash(secret), client.client_secret_hash)):
        raise InvalidRequest("client_secret does not match (it cannot be chosen by the client).")
    return jsonify(update_client(svc, client, document).document(svc))


def _json_body() -> dict[str, Any]:
    return json_input.request_object("client metadata", InvalidClientMetadata)


def _check_initial_access_token(svc: Services) -> None:
    expected = svc.settings.initial_access_token
    if not expected:
        raise RegistrationClosed("Registration is closed: the operator has set no initial access token.")
    supplied = bearer_token()
    if supplied is None:
        raise InvalidBearerToken("Registration needs the initial access token (Bearer).", with_code=False)
    if not constant_time_equals(token_hash(supplied), token_hash(expected)):
        raise InvalidBearerToken("The initial access token is wrong.")


def _client_for_registration_token(svc: Services, client_id: str) -> ClientRecord:
    """RFC 7592 §2: a wrong token and an unknown client both answer 401 (nothing leaks)."""
    supplied = bearer_token()
    if supplied is None:
        raise InvalidBearerToken("The registration access token is required (Bearer).", with_code=False)
    client = svc.store.clients.get(client_id)
    expected = client.registration_token_hash if client else None
    if not expected or not constant_time_equals(token_hash(supplied), expected):
        raise InvalidBearerToken("The registration access token is not valid for this client.")
    return client
