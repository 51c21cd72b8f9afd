"""Moneyhub webhooks (seed 001 "Webhooks"): parse, validate, and decide what they change.

Moneyhub POSTs ``{id, eventType, userId, payload}`` to the URL configured in its admin portal:
``{issuer}/plugins/moneyhub/webhooks?token=<MONEYHUB_WEBHOOK_SECRET>``. The secret travels in the
query string because the access log records paths but never query strings.

Nothing in a webhook is trusted as data: it only tells us that a user's connections changed, so
their cached connection list is dropped and the next status check or token hand-out asks
Moneyhub again, and the person sees a notice on their dashboard. That keeps a forged webhook
harmless beyond one extra request to Moneyhub. A webhook about a user we do not know is refused.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from aggregator import json_input
from aggregator.json_input import JSONRefused
from aggregator.security import csrf_exempt
from aggregator.upstream.contract import UpstreamError
from config.settings import describe_errors

if TYPE_CHECKING:
    from plugins.moneyhub.plugin import MoneyhubPlugin

log = logging.getLogger("plugins.moneyhub.webhooks")

#: how long a webhook id is remembered, so a redelivery is acknowledged but not re-applied
DEDUPLICATION_TTL = 24 * 3600
#: events whose payload we understand; others are acknowledged and treated as "something changed"
NEW_TRANSACTIONS = "newTransactions"


class _AccountTransactions(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    transactions = fields.List(
        fields.String(validate=validate.Length(min=1, max=128)),
        required=True, validate=validate.Length(max=10_000),
    )


class NewTransactionsPayload(Schema):
    """``newTransactions``: accounts with the ids of their new transactions."""

    class Meta:
        unknown = EXCLUDE

    accounts = fields.List(fields.Nested(_AccountTransactions), required=True,
                           validate=validate.Length(max=1000))


class WebhookSchema(Schema):
    """The envelope every Moneyhub webhook shares (seed 001 "Schema")."""

    class Meta:
        unknown = EXCLUDE  # Moneyhub may add members; they are not ours to refuse

    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    eventType = fields.String(required=True, validate=validate.Length(min=1, max=64))  # noqa: N815
    userId = fields.String(required=True, validate=validate.Length(min=1, max=128))  # noqa: N815
    payload = fields.Dict(required=True)


@dataclass(frozen=True)
class WebhookEvent:
    """A validated webhook."""

    id: str
    event_type: str
    user_id: str
    #: account id -> new transaction ids (``newTransactions`` only)
    new_transactions: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Effect:
    """What an event changes here: whose cached connection list to drop, and a log summary."""

    user_id: str
    forget_connections: bool
    summary: str


class WebhookRejected(ValueError):
    """The body is not a Moneyhub webhook; the message says why."""


def parse_webhook(body: Any) -> WebhookEvent:
    """Validate ``body`` (parsed JSON) as a Moneyhub webhook."""
    try:
        envelope = WebhookSchema().load(body if isinstance(body, dict) else {})
    except ValidationError as exc:
        raise WebhookRejected(describe_errors(exc.messages)) from None
    new: dict[str, tuple[str, ...]] = {}
    if envelope["eventType"] == NEW_TRANSACTIONS:
        try:
            payload = NewTransactionsPayload().load(envelope["payload"])
        except ValidationError as exc:
            raise WebhookRejected("payload: " + describe_errors(exc.messages)) from None
        for account in payload["accounts"]:
            new[account["id"]] = new.get(account["id"], ()) + tuple(account["transactions"])
    return WebhookEvent(envelope["id"], envelope["eventType"], envelope["userId"], new)


def effect_of(event: WebhookEvent) -> Effect:
    """``newTransactions``: the connections synced (their ``lastUpdated``/status changed);
    any other event about a user may concern its connections too, so it is treated alike."""
    if event.event_type == NEW_TRANSACTIONS:
        count = sum(len(ids) for ids in event.new_transactions.values())
        return Effect(event.user_id, True,
                      f"{count} new transaction(s) in {len(event.new_transactions)} account(s)")
    return Effect(event.user_id, True, f"event {event.event_type}")


def webhook_blueprint(plugin: MoneyhubPlugin) -> Blueprint:
    """``POST /webhooks?token=...`` (mounted by the core under ``/plugins/moneyhub``)."""
    bp = Blueprint("moneyhub_webhooks", __name__)
    secret = plugin.settings.webhook_secret or ""

    def receive() -> tuple[Response, int]:
        supplied = request.args.get("token", "")
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            supplied = header[7:].strip()
        if not secret or not hmac.compare_digest(supplied.encode(), secret.encode()):
            # the same answer as an unknown path: do not confirm the endpoint exists
            return jsonify(error="not_found"), 404
        try:
            event = parse_webhook(json_input.loads(request.get_data()))
        except (WebhookRejected, JSONRefused) as exc:
            return jsonify(error="invalid_request", error_description=str(exc)), 400
        person_id = plugin.owner_of(event.user_id)
        if person_id is None:
            return jsonify(error="invalid_request",
                           error_description="userId: not a Moneyhub user of this service."), 400
        cache = plugin.context.cache
        if not cache.add(f"webhook:{event.id}", True, ttl=DEDUPLICATION_TTL):
            return jsonify(received=event.id, duplicate=True), 200
        effect = effect_of(event)
        if effect.forget_connections:
            plugin.users.forget_connections(effect.user_id)
        plugin.context.notices.record(person_id, f"Moneyhub: {effect.summary}.")
        try:
            plugin.report_statuses(person_id, event.user_id)
            if event.event_type == NEW_TRANSACTIONS:
                plugin.announce_new_data(person_id, event.user_id)
        except UpstreamError:
            log.warning("moneyhub unreachable after a webhook; statuses update on the next visit")
        log.info("moneyhub webhook", extra={"event_type": event.event_type,
                                            "summary": effect.summary})
        return jsonify(received=event.id), 200

    # Moneyhub cannot send our CSRF token; the shared secret authenticates it instead
    bp.add_url_rule("/webhooks", "receive", csrf_exempt(receive), methods=["POST"])
    return bp
