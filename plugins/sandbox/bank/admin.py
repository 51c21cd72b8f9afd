"""Development-only controls under ``/_admin``: faults, customer and token revocation, counters.

There is no authentication here: the sandbox bank is a development and test server bound to
loopback. Never expose it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import Blueprint, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .context import current_bank
from .errors import safe_description
from .faults import FaultsSchema
from .institutions import INSTITUTIONS, bank_user_id, normalize_username

bp = Blueprint("admin", __name__, url_prefix="/_admin")


class RevokeSchema(Schema):
    class Meta:
        unknown = RAISE

    institution = fields.String(required=True, validate=validate.OneOf(list(INSTITUTIONS)))
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))


class RevokeTokenSchema(Schema):
    class Meta:
        unknown = RAISE

    token = fields.String(required=True, validate=validate.Length(min=1, max=512))


@bp.get("/faults")
def get_faults() -> dict[str, Any]:
    return asdict(current_bank().store.load_faults())


@bp.post("/faults")
def set_faults() -> dict[str, Any]:
    changes = _load(FaultsSchema())
    return asdict(current_bank().store.update_faults(changes))


@bp.post("/revoke")
def revoke_customer() -> dict[str, Any]:
    """Revoke every grant (and so every token) of one customer, as a bank's support desk does."""
    body = _load(RevokeSchema())
    username = normalize_username(body["username"])
    if username is None:
        raise InvalidRequestError("Invalid 'username'.")
    institution = INSTITUTIONS[body["institution"]]
    user_id = bank_user_id(institution, username)
    revoked = current_bank().store.revoke_customer(institution.slug, user_id)
    return {"institution": institution.slug, "user_id": user_id, "revoked_grants": revoked}


@bp.post("/revoke-token")
def revoke_token() -> dict[str, Any]:
    """End one token (its grant and other tokens stay), as when a bank invalidates an access
    token early: the API answers 401 ``invalid_token`` to it while a refresh still works."""
    body = _load(RevokeTokenSchema())
    store = current_bank().store
    record = store.find_token(body["token"])
    if record is not None:
        store.delete_token(record)
    return {"revoked": record is not None}


@bp.get("/stats")
def stats() -> dict[str, Any]:
    return current_bank().store.stats()


@bp.post("/reset")
def reset() -> dict[str, Any]:
    """Back to default faults and zero counters; grants and tokens are kept."""
    current_bank().store.reset()
    return {"faults": asdict(current_bank().store.load_faults())}


def _load(schema: Schema) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    try:
        return schema.load(body)  # type: ignore[return-value]
    except ValidationError as error:
        problems = "; ".join(
            f"{name}: {' '.join(map(str, messages))}"
            for name, messages in sorted(error.normalized_messages().items())
        )
        raise InvalidRequestError(safe_description(problems)) from None
