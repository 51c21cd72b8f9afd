"""Fault injection for tests and benchmarks: latency, failed token requests, token settings.

Development only: the settings are server-wide and anyone who can reach ``/_admin`` can change
them. They live in Redis (see :class:`.store.Faults`), so every worker applies the same ones.
"""

from __future__ import annotations

import random
import time
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from .context import current_bank, current_faults
from .errors import TemporarilyUnavailableError


class JsonBoolean(fields.Boolean):
    """Only JSON ``true``/``false``: ``1`` or ``"yes"`` are more likely mistakes than intent."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class FaultsSchema(Schema):
    """A change to the fault settings: any subset of the fields, nothing else."""

    class Meta:
        unknown = RAISE

    latency_ms = fields.Integer(strict=True, validate=validate.Range(min=0, max=60_000))
    failure_rate = fields.Float(allow_nan=False, validate=validate.Range(min=0.0, max=1.0))
    rotate_refresh_tokens = JsonBoolean()
    access_token_ttl = fields.Integer(strict=True, validate=validate.Range(min=1, max=86_400))


def inject_latency() -> None:
    """Hold the request for the configured latency (token endpoint and resource API)."""
    latency_ms = current_faults().latency_ms
    if latency_ms:
        time.sleep(latency_ms / 1000)


def inject_failure() -> None:
    """Fail the configured fraction of token requests with 503 ``temporarily_unavailable``."""
    failure_rate = current_faults().failure_rate
    if failure_rate and random.random() < failure_rate:
        current_bank().store.count_injected_failure()
        raise TemporarilyUnavailableError()
