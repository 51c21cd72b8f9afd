"""The SSF 1.0 transmitter's endpoints.

- ``GET  /.well-known/ssf-configuration``     transmitter metadata (SSF 1.0 §7.1)
- ``/ssf/stream``  POST create, GET read, PUT replace, PATCH update, DELETE (§8.1.1)
- ``/ssf/status``  GET read, POST update (§8.1.2)
- ``/ssf/verify``  POST: send a verification event (§8.1.4)
- ``/ssf/poll``    POST: RFC 8936 poll delivery

Who may call them: the app itself, with an access token it got by the client credentials grant
(RFC 6749 §4.4) with the scope ``events``, as a Bearer or DPoP-bound token (RFC 6750, RFC 9449).
A token issued for a person never manages the app's stream. One stream per app (§8.1.1.1:
a second create is a 409).
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Response, jsonify, request
from marshmallow import Schema, ValidationError

from aggregator import json_input
from aggregator.errors import (
    HTTPRequestError,
    InsufficientScope,
    InvalidRequest,
    NotFound,
    TooManyRequests,
    api_blueprint,
)
from aggregator.events import types
from aggregator.events.relay import delivered
from aggregator.events.schemas import (
    PollRequestSchema,
    StatusRequestSchema,
    StreamRequestSchema,
    VerificationRequestSchema,
)
from aggregator.events.sets import sign_set
from aggregator.oauth.resource import access_token_for
from aggregator.oauth.scopes import EVENTS
from aggregator.outbound import OutboundError
from aggregator.security import csrf_exempt, no_store
from aggregator.services import Services, services
from aggregator.store.events import StreamRecord
from config.settings import describe_errors

SCOPE = EVENTS
#: how long a long poll (RFC 8936 §2.4 ``returnImmediately: false``) waits for a SET at most
LONG_POLL_SECONDS = 5.0
DEFAULT_MAX_EVENTS = 20

bp = api_blueprint("events", __name__)

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def urls(svc: Services) -> dict[str, str]:
    base = f"{svc.issuer}/ssf"
    return {"configuration_endpoint": f"{base}/stream", "status_endpoint": f"{base}/status",
            "verification_endpoint": f"{base}/verify", "poll_endpoint": f"{base}/poll"}


@bp.get("/.well-known/ssf-configuration")
def configuration() -> Response:
    """SSF 1.0 §7.1 transmitter configuration metadata."""
    svc = services()
    where = urls(svc)
    response = jsonify({
        "spec_version": "1_0",
        "issuer": svc.issuer,
        "jwks_uri": svc.endpoints.jwks,
        "delivery_methods_supported": list(types.DELIVERY_METHODS),
        "configuration_endpoint": where["configuration_endpoint"],
        "status_endpoint": where["status_endpoint"],
        "verification_endpoint": where["verification_endpoint"],
        # §7.1.1: tokens from this AS, by RFC 6749 (client credentials, scope "events")
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
    })
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# ---------------------------------------------------------------- the opening step


def _app(endpoint: str) -> tuple[Services, str]:
    """The calling app's client id, from its client-credentials token with scope ``events``."""
    no_store()
    svc = services()
    record = access_token_for(svc, urls(svc)[endpoint], scope=SCOPE)
    if record.person_id is not None:
        raise InsufficientScope("Manage the event stream with a token from the client credentials "
                                "grant, not one issued for a person.", scope=SCOPE)
    return svc, record.client_id


def _body(schema: Schema) -> dict[str, Any]:
    document = json_input.request_object("stream request", InvalidRequest)
    try:
        return schema.load(document)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc.messages)) from None


def _stream(svc: Services, client_id: str, stream_id: str | None) -> StreamRecord:
    """The app's stream; a ``stream_id`` that is not its stream's is a 404 (§8.1.1.2)."""
    record = svc.store.event_streams.get(client_id)
    if record is None or (stream_id is not None and stream_id != record.stream_id):
        raise NotFound("No such stream for this app.")
    return record


def _query_stream_id() -> str | None:
    value = request.args.get("stream_id")
    if value is not None and not 0 < len(value) <= 100:
        raise InvalidRequest("stream_id: not a stream id.")
    return value


# ---------------------------------------------------------------- configuration (§8.1.1)


def _document(svc: Services, record: StreamRecord) -> dict[str, Any]:
    delivery = {"method": record.method, "endpoint_url": record.endpoint_url}
    document: dict[str, Any] = {
        "stream_id": record.stream_id, "iss": svc.issuer, "aud": record.client_id,
        "delivery": delivery, "events_supported": types.events_supported(svc.issuer),
        "events_requested": record.events_requested,
        "events_delivered": delivered(svc, record.events_requested),
        "min_verification_interval": 0,
    }
    if record.description:
        document["description"] = record.description
    return document


def _delivery(svc: Services, asked: dict[str, Any] | None) -> tuple[str, str]:
    """(method, endpoint_url): push to an https endpoint of the app's (http on loopback outside
    production), or poll at our endpoint (RFC 8936)."""
    if not asked:
        raise InvalidRequest("delivery: give a method (push or poll).")
    if asked["method"] == types.POLL:
        return types.POLL, urls(svc)["poll_endpoint"]
    url = asked.get("endpoint_url")
    if not url:
        raise InvalidRequest("delivery.endpoint_url: required for push delivery (RFC 8935).")
    try:
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK and not svc.settings.production
        if parts.scheme != "https" and not loopback:
            raise InvalidRequest("delivery.endpoint_url: must be https (http only on loopback, "
                                 "outside production).")
        if parts.username or parts.password or parts.fragment or not parts.hostname:
            raise InvalidRequest("delivery.endpoint_url: an absolute URL without credentials or fragment.")
        svc.outbound_policy.check_url(url)
    except ValueError:
        raise InvalidRequest("delivery.endpoint_url: not a URL.") from None
    except OutboundError as exc:
        raise InvalidRequest(f"delivery.endpoint_url: {exc.host} {exc.reason}.") from None
    return types.PUSH, url


def _events_requested(svc: Services, asked: list[str] | None) -> list[str]:
    supported = types.events_supported(svc.issuer)
    unknown = [uri for uri in asked or [] if uri not in supported]
    if unknown:
        raise InvalidRequest(f"events_requested: not supported: {', '.join(unknown[:5])}.")
    return list(dict.fromkeys(asked or []))


@bp.post("/ssf/stream")
@csrf_exempt
def create_stream() -> tuple[Response, int]:
    svc, client_id = _app("configuration_endpoint")
    body = _body(StreamRequestSchema())
    method, endpoint_url = _delivery(svc, body.get("delivery"))
    record = StreamRecord(stream_id=secrets.token_urlsafe(16), client_id=client_id, method=method,
                          endpoint_url=endpoint_url,
                          events_requested=_events_requested(svc, body.get("events_requested")),
                          description=body.get("description", ""), created_at=int(time.time()))
    if not svc.store.event_streams.create(record):
        raise HTTPRequestError(409, "This app has its stream already (one per app): read, "
                                    "update or delete it.")
    return jsonify(_document(svc, record)), 201


@bp.get("/ssf/stream")
def read_stream() -> Response:
    svc, client_id = _app("configuration_endpoint")
    stream_id = _query_stream_id()
    record = _stream(svc, client_id, stream_id)
    # §8.1.1.2: without stream_id, every stream of the receiver (here: its one)
    return jsonify(_document(svc, record) if stream_id else [_document(svc, record)])


@bp.route("/ssf/stream", methods=["PATCH", "PUT"])
@csrf_exempt
def update_stream() -> Response:
    """PATCH changes the members sent (§8.1.1.3); PUT replaces the configuration (§8.1.1.4)."""
    svc, client_id = _app("configuration_endpoint")
    body = _body(StreamRequestSchema())
    if "stream_id" not in body:
        raise InvalidRequest("stream_id: required.")
    record = _stream(svc, client_id, body["stream_id"])
    replace = request.method == "PUT"
    if replace or "delivery" in body:
        record.method, record.endpoint_url = _delivery(svc, body.get("delivery"))
    if replace or "events_requested" in body:
        record.events_requested = _events_requested(svc, body.get("events_requested"))
    if replace or "description" in body:
        record.description = body.get("description", "")
    svc.store.event_streams.save(record)
    return jsonify(_document(svc, record))


@bp.delete("/ssf/stream")
@csrf_exempt
def delete_stream() -> tuple[str, int]:
    svc, client_id = _app("configuration_endpoint")
    stream_id = _query_stream_id()
    if stream_id is None:
        raise InvalidRequest("stream_id: required (a query parameter).")
    _stream(svc, client_id, stream_id)
    svc.store.event_streams.delete(client_id)
    return "", 204


# ---------------------------------------------------------------- status (§8.1.2)


def _status(record: StreamRecord) -> dict[str, Any]:
    status: dict[str, Any] = {"stream_id": record.stream_id, "status": record.status}
    if record.reason:
        status["reason"] = record.reason
    return status


@bp.get("/ssf/status")
def read_status() -> Response:
    svc, client_id = _app("status_endpoint")
    return jsonify(_status(_stream(svc, client_id, _query_stream_id())))


@bp.post("/ssf/status")
@csrf_exempt
def update_status() -> Response:
    """Pause, disable or enable; enabling a failing stream sends the SETs held for it."""
    svc, client_id = _app("status_endpoint")
    body = _body(StatusRequestSchema())
    _stream(svc, client_id, body["stream_id"])
    svc.store.event_streams.set_status(client_id, body["status"], body.get("reason", ""))
    return jsonify(_status(_stream(svc, client_id, None)))


# ---------------------------------------------------------------- verification (§8.1.4)


@bp.post("/ssf/verify")
@csrf_exempt
def verify() -> tuple[str, int]:
    svc, client_id = _app("verification_endpoint")
    body = _body(VerificationRequestSchema())
    record = _stream(svc, client_id, body["stream_id"])
    if not svc.store.event_streams.verification_allowed(client_id):
        raise TooManyRequests("At most 30 verification requests a minute (SSF 1.0 §8.1.4.2).")
    payload = {"state": body["state"]} if "state" in body else {}
    jti = secrets.token_hex(16)
    signed = sign_set(svc, audience=client_id, jti=jti,
                      sub_id={"format": "opaque", "id": record.stream_id},
                      event_type=types.VERIFICATION, payload=payload)
    outcome = svc.store.event_streams.queue(client_id, jti, signed)
    if outcome in ("push", "poll", "held"):
        svc.metrics.set_queued(outcome)
    return "", 204


# ---------------------------------------------------------------- poll delivery (RFC 8936)


@bp.post("/ssf/poll")
@csrf_exempt
def poll() -> Response:
    """RFC 8936 §2.4: acknowledge (``ack``, ``setErrs``), then receive up to ``maxEvents``;
    without ``returnImmediately: true`` wait up to LONG_POLL_SECONDS for one."""
    svc, client_id = _app("poll_endpoint")
    body = _body(PollRequestSchema())
    record = _stream(svc, client_id, None)
    if record.method != types.POLL:
        raise InvalidRequest("This stream is delivered by push, not poll.")
    acknowledged = list(body.get("ack", [])) + list(body.get("setErrs", {}))
    max_events = body.get("maxEvents", DEFAULT_MAX_EVENTS)
    streams = svc.store.event_streams
    sets, more = streams.poll(client_id, acknowledged, max_events)
    deadline = time.monotonic() + LONG_POLL_SECONDS
    while not sets and max_events and not body.get("returnImmediately", False) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
        sets, more = streams.poll(client_id, (), max_events)
    return jsonify({"sets": sets, "moreAvailable": more})
