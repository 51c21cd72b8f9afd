"""Payees and payments at the identity service base (seed 001 "Payments")."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from .context import fake
from .errors import InvalidRequest, NotFound
from .users import bearer

bp = Blueprint("payments", __name__)

SORT_CODE = re.compile(r"[0-9]{6}")
ACCOUNT_NUMBER = re.compile(r"[0-9]{8}")


@bp.post("/payees")
def create_payee() -> tuple[Response, int]:
    """A receiving account (``payee:create``); its ``id`` goes into ``mh:payment``."""
    token = bearer("payee:create")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    sort_code, account_number, name = (body.get(k) for k in ("sortCode", "accountNumber", "name"))
    if not isinstance(sort_code, str) or not SORT_CODE.fullmatch(sort_code):
        raise InvalidRequest("sortCode must be 6 digits")
    if not isinstance(account_number, str) or not ACCOUNT_NUMBER.fullmatch(account_number):
        raise InvalidRequest("accountNumber must be 8 digits")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("name is required")
    payee = fake().create_payee(token.client_id, sort_code, account_number, name)
    return jsonify(data=payee.as_json(), meta={}), 201


@bp.get("/payees")
def list_payees() -> Response:
    """The client's payees (``payee:read``), paged by ``limit`` and ``offset``."""
    token = bearer("payee:read")
    return _page([p.as_json() for p in fake().payees(token.client_id)])


@bp.get("/payments")
def list_payments() -> Response:
    """Every payment the client initiated, authorised or not (``payment:read``)."""
    token = bearer("payment:read")
    return _page([p.as_json() for p in fake().payments(token.client_id)])


@bp.get("/payments/<payment_id>")
def get_payment(payment_id: str) -> Response:
    """One payment with its ``status`` (``payment:read``)."""
    token = bearer("payment:read")
    payment = fake().payment(payment_id, token.client_id)
    if payment is None:
        raise NotFound("no such payment for this client")
    return jsonify(data=payment.as_json(), meta={})


def _page(items: list[dict]) -> Response:
    try:
        limit = int(request.args.get("limit", 100))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        raise InvalidRequest("limit and offset must be integers") from None
    if limit < 1 or offset < 0:
        raise InvalidRequest("limit must be positive and offset not negative")
    return jsonify(data=items[offset:offset + limit], meta={"total": len(items)})
