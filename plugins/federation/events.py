"""The federation plugin as an SSF receiver: the upstream aggregator's events reach us at once.

**The subscription** (OpenID SSF 1.0 §8.1.1): once, lazily (the first link or status check), our
client at the upstream gets a client-credentials token with the scope ``events`` (RFC 6749 §4.4)
and creates its stream there, with push delivery (RFC 8935) to
``{our issuer}/plugins/federation/events`` and the three event types we act on. The stream is
kept in the plugin cache for a day; a stream that exists already (our cache was lost, or a day
passed) is read and replaced, and enabled again if the upstream had paused it.
When the upstream offers no push, refuses our endpoint or our client may not use the scope,
nothing changes but timing: statuses come from the status checks as before (the pull), and the
subscription is tried again after :data:`RETRY_SECONDS`.

**The receiving route** checks each SET before it changes anything (RFC 8417 §2, RFC 8935 §2):
signed by a key of the upstream's JWKS, ``typ: secevent+jwt``, ``iss`` the upstream's issuer,
``aud`` our client id there, exactly one event. A verified SET is applied once per ``jti``
(a redelivery, a replay, or a SET older than the ``jti`` memory is acknowledged and changes
nothing); a bad one is a 400 with
RFC 8935 §2.4's ``{"err", "description"}``. What each event changes:

- CAEP ``session-revoked`` for a grant one of our links holds: every registration of those links
  becomes ``reauth_required``;
- ``institution-status-changed``: that institution's registration takes the status the event says;
- ``grant-changed`` (the person narrowed our grant there): a status check of the grant's links,
  an institution no longer shared becoming ``reauth_required``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator.security import csrf_exempt
from aggregator.upstream.contract import StatusReport, UpstreamError, UpstreamUnavailable
from aggregator.upstream.oidc_client import OAuthRefusal

if TYPE_CHECKING:
    from plugins.federation.plugin import FederationPlugin, UpstreamAggregator

log = logging.getLogger("aggregator.plugins.federation.events")

PUSH = "urn:ietf:rfc:8935"
SCOPE = "events"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
INSTITUTION_STATUS_CHANGED = "institution-status-changed"
GRANT_CHANGED = "grant-changed"
#: the upstream signs SETs as it signs ID tokens (this product: RS256)
SET_ALGORITHMS = ["RS256"]
#: our route under the plugin's blueprint (``/plugins/federation``)
ROUTE = "/events"
#: how long a ``jti`` is remembered (the upstream retries for minutes at most)
JTI_TTL = 7 * 24 * 3600
#: after a failed subscription, status checks alone until this many seconds have passed
RETRY_SECONDS = 3600
#: ... or this many, when the upstream was unreachable
RETRY_TRANSIENT_SECONDS = 60
#: a push subscription is confirmed again (replaced, idempotently) after this many seconds,
#: so a stream the upstream lost or disabled comes back
PUSH_RECHECK_SECONDS = 24 * 3600
#: the upstream's key set is fetched again for an unknown kid at most this often
JWKS_REFRESH_SECONDS = 30
#: a SET body larger than this is not one of ours
MAX_SET_BYTES = 64 * 1024
SUBSCRIPTION_KEY = "events:subscription"


def event_types(issuer: str) -> list[str]:
    """The upstream's URIs of the event types we act on (its own are under its issuer)."""
    return [SESSION_REVOKED, f"{issuer}/events/{INSTITUTION_STATUS_CHANGED}",
            f"{issuer}/events/{GRANT_CHANGED}"]


def receiver_url(plugin: FederationPlugin) -> str:
    return f"{plugin.context.issuer}/plugins/{plugin.name}{ROUTE}"


# ---------------------------------------------------------------- the subscription


def subscription(plugin: FederationPlugin) -> dict[str, Any]:
    """The upstream stream we receive: ``{"method": "push", "stream_id"}``, or ``{"method":
    "pull", "reason"}`` while push is not possible. Subscribes when nothing is known; never
    raises (a failure means pull)."""
    cache = plugin.context.cache
    known = cache.get(SUBSCRIPTION_KEY)
    if isinstance(known, dict):
        return known
    if not cache.add(f"{SUBSCRIPTION_KEY}:lock", 1, ttl=30):
        return {"method": "pull", "reason": "subscribing"}  # another worker is at it
    try:
        upstream = plugin.upstream(plugin.issuer)
        try:
            stream_id = _subscribe(plugin, upstream)
            known = {"method": "push", "stream_id": stream_id}
            cache.set(SUBSCRIPTION_KEY, known, ttl=PUSH_RECHECK_SECONDS)
            log.info("subscribed to the upstream's events", extra={"upstream": plugin.issuer})
        except (UpstreamError, OAuthRefusal, ValueError) as exc:
            reason = exc.description if isinstance(exc, UpstreamError) else str(exc)
            known = {"method": "pull", "reason": reason[:300]}
            # an upstream that is down is tried again soon; one that said no, later
            retry = RETRY_TRANSIENT_SECONDS if isinstance(exc, UpstreamUnavailable) else RETRY_SECONDS
            cache.set(SUBSCRIPTION_KEY, known, ttl=retry)
            log.warning("upstream events unavailable: status checks only",
                        extra={"upstream": plugin.issuer, "reason": known["reason"]})
        return known
    finally:
        cache.delete(f"{SUBSCRIPTION_KEY}:lock")


def _subscribe(plugin: FederationPlugin, upstream: UpstreamAggregator) -> str:
    """SSF 1.0 §8.1.1.1: create our push stream at the upstream (or replace the one it has
    for our client, §8.1.1.4); its ``stream_id``."""
    config = _ssf_configuration(upstream)
    if PUSH not in (config.get("delivery_methods_supported") or []):
        raise ValueError("the upstream offers no push delivery")
    endpoint = config.get("configuration_endpoint")
    if not isinstance(endpoint, str):
        raise ValueError("the upstream's SSF configuration has no configuration_endpoint")
    answer = upstream.client_credentials([SCOPE])
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise ValueError("the upstream's events token is not a Bearer token")
    headers = {"Authorization": f"Bearer {answer['access_token']}", "Accept": "application/json"}
    wanted = {"delivery": {"method": PUSH, "endpoint_url": receiver_url(plugin)},
              "events_requested": event_types(upstream.issuer),
              "description": f"Aggregator {plugin.context.issuer}"}
    created = upstream.send("POST", endpoint, json=wanted, headers=headers)
    if created.status_code == 409:  # §8.1.1.1: ours exists already: replace its configuration
        listed = upstream.send("GET", endpoint, headers=headers)
        streams = upstream.json(listed, "stream list") if listed.status_code == 200 else None
        if not isinstance(streams, list) or not streams or not isinstance(streams[0], dict):
            raise ValueError("the upstream did not list our stream")
        created = upstream.send("PUT", endpoint, headers=headers,
                                json={**wanted, "stream_id": streams[0].get("stream_id")})
    if created.status_code not in (200, 201):
        raise upstream.refusal(created)
    stream = upstream.json(created, "stream configuration")
    if not isinstance(stream, dict) or not isinstance(stream.get("stream_id"), str):
        raise ValueError("the upstream's stream has no stream_id")
    if (stream.get("delivery") or {}).get("method") != PUSH:
        raise ValueError("the upstream did not accept push delivery")
    _enable(upstream, config, headers, stream["stream_id"])
    return stream["stream_id"]


def _enable(upstream: UpstreamAggregator, config: dict[str, Any], headers: dict[str, str],
            stream_id: str) -> None:
    """SSF 1.0 §8.1.2: a stream the upstream paused (it could not reach us for a while, and now
    holds our SETs) is enabled again, which sends what it held."""
    endpoint = config.get("status_endpoint")
    if not isinstance(endpoint, str):
        return
    read = upstream.send("GET", endpoint, params={"stream_id": stream_id}, headers=headers)
    status = upstream.json(read, "stream status") if read.status_code == 200 else None
    if isinstance(status, dict) and status.get("status") not in (None, "enabled"):
        enabled = upstream.send("POST", endpoint, headers=headers,
                                json={"stream_id": stream_id, "status": "enabled"})
        if enabled.status_code != 200:
            raise upstream.refusal(enabled)


def _ssf_configuration(upstream: UpstreamAggregator) -> dict[str, Any]:
    """SSF 1.0 §7.2: ``/.well-known/ssf-configuration`` inserted before the issuer's path; its
    ``issuer`` must be the one asked for (§7.2.2)."""
    parts = urlsplit(upstream.issuer)
    url = urlunsplit(parts._replace(path=f"/.well-known/ssf-configuration{parts.path}"))

    def fetch() -> dict[str, Any]:
        response = upstream.send("GET", url, headers={"Accept": "application/json"})
        document = upstream.json(response, "SSF configuration") if response.status_code == 200 else None
        if not isinstance(document, dict):
            raise ValueError("the upstream publishes no SSF configuration")
        if document.get("issuer") != upstream.issuer:
            raise ValueError("the upstream's SSF configuration names another issuer")
        return document

    return upstream.cached(f"ssf:{upstream.issuer}", fetch)


# ---------------------------------------------------------------- the receiving route


class Refused(Exception):
    """RFC 8935 §2.4: a SET we do not accept, with its error code."""

    def __init__(self, err: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.err = err
        self.description = description
        self.status = status


def verify_set(upstream: UpstreamAggregator, audience: str, signed: str) -> dict[str, Any]:
    """The SET's claims once every RFC 8417 §2 / RFC 8935 §2 check passed."""
    try:
        kid = jws.extract_compact(signed.encode()).protected.get("kid")
    except (JoseError, ValueError, TypeError):
        raise Refused("invalid_request", "Not a signed JWT.") from None
    try:
        keys = upstream.jwks()
        # an unknown kid: the upstream may have rotated its keys; asked again at most every
        # JWKS_REFRESH_SECONDS, so forged kids do not make us hammer the upstream
        if kid and not any(key.get("kid") == kid for key in keys.get("keys", [])) \
                and upstream.cache.add("jwks-refreshed", 1, ttl=JWKS_REFRESH_SECONDS):
            keys = upstream.jwks(refresh=True)
        token = jwt.decode(signed, KeySet.import_key_set(keys), algorithms=SET_ALGORITHMS)
    except UpstreamError:  # not the SET's fault: a 503, and the upstream delivers it again
        raise Refused("invalid_key", "The issuer's keys are unavailable.", 503) from None
    except (JoseError, ValueError, TypeError):
        raise Refused("invalid_key", "The SET does not verify with the issuer's keys.") from None
    if token.header.get("typ") != "secevent+jwt":  # RFC 8417 §2.3, SSF 1.0 §4.1
        raise Refused("invalid_request", "typ: must be secevent+jwt.")
    claims = token.claims
    if claims.get("iss") != upstream.issuer:
        raise Refused("invalid_issuer", "iss: not the aggregator we subscribed to.")
    aud = claims.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise Refused("invalid_audience", "aud: not our client id there.")
    if not isinstance(claims.get("iat"), int) or claims["iat"] > time.time() + 300:
        raise Refused("invalid_request", "iat: required, and not in the future (RFC 8417 §2.2).")
    jti, events = claims.get("jti"), claims.get("events")
    if not isinstance(jti, str) or not 0 < len(jti) <= 200:
        raise Refused("invalid_request", "jti: required.")
    if not isinstance(events, dict) or len(events) != 1 or not isinstance(next(iter(events.values())), dict):
        raise Refused("invalid_request", "events: exactly one event, an object (SSF 1.0 §4.1).")
    return claims


def events_blueprint(plugin: FederationPlugin) -> Blueprint:
    """``POST /events`` (mounted by the core under ``/plugins/federation``): RFC 8935 push."""
    bp = Blueprint("federation_events", __name__)

    def receive() -> tuple[Response, int]:
        if request.mimetype != "application/secevent+jwt":  # RFC 8935 §2
            return _refuse("invalid_request", "Send a SET as application/secevent+jwt.")
        if (request.content_length or 0) > MAX_SET_BYTES:
            return _refuse("invalid_request", "The SET is too large.")
        body = request.get_data(cache=False)
        upstream = plugin.upstream(plugin.issuer)
        try:
            claims = verify_set(upstream, plugin.credentials.client_id, body.decode("ascii").strip())
        except UnicodeDecodeError:
            return _refuse("invalid_request", "Not a signed JWT.")
        except Refused as refused:
            log.info("upstream SET refused", extra={"err": refused.err})
            return _refuse(refused.err, refused.description, refused.status)
        # RFC 8417 §2.2: one jti, one effect; remembered only once the SET verified, so a
        # forged SET cannot spend a real one's jti. A SET older than that memory is
        # acknowledged unapplied: its jti may have been forgotten, and status checks catch up.
        fresh = claims["iat"] >= time.time() - JTI_TTL
        if fresh and plugin.context.cache.add(f"jti:{claims['jti']}", 1, ttl=JTI_TTL):
            apply(plugin, claims)
        return Response(status=202), 202  # RFC 8935 §2.2

    # the upstream cannot send our CSRF token; the SET's signature authenticates it instead
    bp.add_url_rule(ROUTE, "receive", csrf_exempt(receive), methods=["POST"])
    return bp


def _refuse(err: str, description: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(err=err, description=description), status


# ---------------------------------------------------------------- what an event changes


def apply(plugin: FederationPlugin, claims: dict[str, Any]) -> None:
    """Map one verified event onto our registrations; an event about a grant none of our links
    holds changes nothing (another B of the same upstream, or a link removed since)."""
    [(event_type, payload)] = claims["events"].items()
    sub_id = claims.get("sub_id")
    session = sub_id.get("session") if isinstance(sub_id, dict) else None
    grant_id = payload.get("grant_id") or (session.get("id") if isinstance(session, dict) else None)
    if not isinstance(grant_id, str):
        return
    issuer = plugin.issuer
    handlers: dict[str, Callable[[FederationPlugin, str, dict[str, Any]], None]] = {
        SESSION_REVOKED: _revoked,
        f"{issuer}/events/{INSTITUTION_STATUS_CHANGED}": _institution_status,
        f"{issuer}/events/{GRANT_CHANGED}": _grant_changed,
    }
    handler = handlers.get(event_type)
    if handler is not None:
        handler(plugin, grant_id, payload)
        log.info("upstream event applied", extra={"event_type": event_type.rsplit("/", 1)[-1]})


def _revoked(plugin: FederationPlugin, grant_id: str, payload: dict[str, Any]) -> None:
    words = f"{plugin.upstream_name}: this server's access was revoked there; connect it again."
    for person_id, external_id in plugin.registrations_of_grant(grant_id):
        plugin.context.notices.report_status(person_id, external_id,
                                             StatusReport("reauth_required", words))


def _institution_status(plugin: FederationPlugin, grant_id: str, payload: dict[str, Any]) -> None:
    status, upstream_id = payload.get("status"), payload.get("registration_id")
    # ``error`` at A is transient: no news, as in ``status()``
    if status not in ("ok", "reauth_required", "expired") or not isinstance(upstream_id, str):
        return
    error = None if status == "ok" else f"{plugin.upstream_name}: the institution needs you there."
    for person_id, external_id in plugin.registrations_of_grant(grant_id):
        if external_id.endswith(f":{upstream_id}"):
            plugin.context.notices.report_status(person_id, external_id, StatusReport(status, error))


def _grant_changed(plugin: FederationPlugin, grant_id: str, payload: dict[str, Any]) -> None:
    for person_id, external_id, report in plugin.check_grant(grant_id):
        plugin.context.notices.report_status(person_id, external_id, report)
