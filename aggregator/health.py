"""Liveness and readiness probes for operators and orchestrators."""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify
from marshmallow import RAISE, Schema, fields

from aggregator.errors import RETRY_AFTER
from aggregator.services import services
from aggregator.store.faults import store_fault

bp = Blueprint("health", __name__)


class HealthSchema(Schema):
    """What both probes answer: ``status``, and for an unready process the ``error``."""

    class Meta:
        unknown = RAISE

    status = fields.String(required=True)
    error = fields.String()


@bp.get("/healthz")
def healthz():
    """The process is up and serving requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready for traffic: Redis takes a write. A server that answers PING may still be a
    read-only replica or refuse writes (``MISCONF``); the answer names which (RFC 9110 §15.6.4)."""
    try:
        services().store.readiness.write()
    except redis.RedisError as exc:
        fault = store_fault(exc)
        if fault is None:
            raise
        return jsonify(status="unavailable", error=fault.value), 503, {"Retry-After": str(RETRY_AFTER)}
    return jsonify(status="ready")
