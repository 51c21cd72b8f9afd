"""``POST /introspect``: RFC 7662 token introspection, read top to bottom as the protocol's steps.

1-3. ``client_request``       the opening steps every client-authenticated endpoint shares
                              (:mod:`aggregator.oauth.steps`): no caching (as RFC 6749 §5.1), a
                              form body without repeated parameters (RFC 7662 §2.1, RFC 6749
                              §3.2), and client authentication, which RFC 7662 §2.1 requires
4. ``require_token``          the ``token`` parameter is present (RFC 7662 §2.1)
5. ``describe``               ``{"active": false}`` unless the token is live and the caller's
                              (RFC 7662 §2.2, §4); else its members and ``institutions``,
                              after dropping the upstream token an app reports refused
                              (``rejected_registration``, :mod:`.rejected`)
6. ``audit``                  record which upstream tokens were released, to whom, and
                              count the introspection and its tokens (:mod:`aggregator.metrics`)
7. ``render``                 JSON, or a signed JWT when asked for (RFC 9701)
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from aggregator.errors import InvalidRequest, api_blueprint
from aggregator.introspection.audit import record_release
from aggregator.introspection.rejected import PARAMETER as REJECTED
from aggregator.introspection.rejected import report_rejected
from aggregator.introspection.response import INACTIVE, Institutions, institutions
from aggregator.introspection.signed import ALGORITHM, MEDIA_TYPE, signed_response, wants_jwt
from aggregator.oauth.id_token import pairwise_subject
from aggregator.oauth.payment_initiation import granted_payments
from aggregator.oauth.profile import rules
from aggregator.oauth.steps import client_request
from aggregator.security import csrf_exempt
from aggregator.services import services
from aggregator.store.clients import ClientRecord
from aggregator.store.tokens import AccessTokenRecord, RefreshTokenRecord

bp = api_blueprint("introspection", __name__)


@bp.post("/introspect")
@csrf_exempt
def introspect() -> Response:
    """RFC 7662 §2: describe a token to the client it was issued to."""
    params, client = client_request(services().endpoints.introspection)
    token = require_token(params)
    body, released = describe(client, token, params.get(REJECTED) or None)
    audit(client, body, released)
    return render(body, client)


def require_token(params: dict[str, str]) -> str:
    """RFC 7662 §2.1: ``token`` is REQUIRED."""
    token = params.get("token", "")
    if not token:
        raise InvalidRequest("Missing 'token'.")
    # ``token_type_hint`` is optional and may be ignored (RFC 7662 §2.1): we look everywhere.
    return token


def describe(client: ClientRecord, token: str, rejected: str | None = None,
             ) -> tuple[dict[str, Any], Institutions | None]:
    """The response body, and the institutions whose tokens it releases (None: no release).

    ``rejected``: a registration whose upstream token the app reports refused; its token is
    dropped and refreshed before the institutions are listed.
    """
    svc = services()
    record = find(token)
    if record is None or not entitled(client, record.client_id):
        return dict(INACTIVE), None
    # the token's own client: its pairwise ``sub`` is the one in that client's ID tokens
    owner = client if client.client_id == record.client_id else svc.store.clients.get(record.client_id)
    if owner is None:
        return dict(INACTIVE), None  # the app was deleted while we looked
    body = members(owner, record)
    if isinstance(record, RefreshTokenRecord) or record.person_id is None or record.grant_id is None:
        if rejected is not None:
            raise InvalidRequest(f"'{REJECTED}' is not a registration this token reaches.")
        # a refresh token is for the token endpoint; a client_credentials token has no person:
        # neither reaches upstream tokens
        return body, None
    grant = svc.store.grants.get_for(record.person_id, record.grant_id)
    if grant is None:
        return dict(INACTIVE), None  # revoked while we looked
    if rejected is not None:
        report_rejected(svc, grant, record, rejected)
    found = institutions(svc, grant, record, recent=rejected is None)
    details = found.details + granted_payments(svc, record.person_id, record.family, record.scopes)
    if details:  # RFC 9396 §9.1
        body["authorization_details"] = details
    body["institutions"] = found.entries
    return body, found


def find(token: str) -> AccessTokenRecord | RefreshTokenRecord | None:
    """The live access or refresh token (RFC 7662 §2.1: whatever the hint says).

    An access token's grant and client are not checked here: :func:`describe` reads both
    (and answers inactive when either is gone), so checking twice would only cost time.
    """
    tokens = services().store.tokens
    return tokens.find_access_token(token, check_links=False) or tokens.find_refresh_token(token)


def entitled(client: ClientRecord, token_client_id: str) -> bool:
    """RFC 7662 §4: only the token's own client, or a resource server acting for it, learns
    anything; everyone else is told the token is inactive."""
    return client.client_id == token_client_id or token_client_id in client.resource_server_for


def members(owner: ClientRecord, record: AccessTokenRecord | RefreshTokenRecord) -> dict[str, Any]:
    """RFC 7662 §2.2 members, in the documented order (``institutions`` follows).

    ``sub`` is the pairwise identifier ``owner`` (the token's client) sees in its ID tokens
    (OIDC Core §8.1), so an app can match the token to the person it signed in.
    """
    svc = services()
    body: dict[str, Any] = {"active": True, "scope": record.scope, "client_id": record.client_id}
    if record.person_id is not None:
        body["sub"] = pairwise_subject(owner, record.person_id)
    body.update(exp=record.expires_at, iat=record.issued_at, iss=svc.settings.issuer)
    if isinstance(record, AccessTokenRecord):
        body["token_type"] = record.token_type  # RFC 7662 §2.2: an access token's type
    if record.jkt is not None:  # RFC 9449 §6.2: the key a DPoP-bound token is bound to
        body["cnf"] = {"jkt": record.jkt}
    if record.grant_id is not None:
        body["grant_id"] = record.grant_id
    return body


def audit(client: ClientRecord, body: dict[str, Any], found: Institutions | None) -> None:
    """Record a release of upstream tokens (nothing when none was released); count both."""
    metrics = services().metrics
    metrics.introspected(body["active"])
    if found is None or not found.released:
        return
    metrics.tokens_released(found.entries[name]["provider"] for _, name in found.released)
    record_release(client.client_id, client.display_name, found.person_id, found.released)


def render(body: dict[str, Any], client: ClientRecord) -> Response:
    """JSON (RFC 7662 §2.2), or the RFC 9701 JWT when the client asks for it."""
    if wants_jwt(request):
        svc = services()
        signed = signed_response(body, issuer=svc.settings.issuer, audience=client.client_id,
                                 keys=svc.signing_keys, alg=rules(svc.settings).signing_alg(ALGORITHM))
        return Response(signed, mimetype=MEDIA_TYPE)
    return jsonify(body)
