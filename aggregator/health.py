"""Liveness and readiness probes for operators and orchestrators."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import RAISE, Schema, fields

from aggregator.services import services

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
    """Ready for traffic: Redis answers."""
    if services().store.ping():
        return jsonify(status="ready")
    return jsonify(status="unavailable", error="redis unreachable"), 503
