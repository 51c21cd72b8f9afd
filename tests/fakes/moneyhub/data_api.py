"""The Data API (``https://api.moneyhub.co.uk/v3`` in production): accounts and transactions.

A data token is a client-credentials token with ``sub``; it reaches every connection of that
user, filtered by the token's scopes and each connection's consented permissions.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .authorization import TRANSACTION_READ_SCOPES
from .context import data_api_url, fake
from .errors import InsufficientScope, InvalidRequest, InvalidToken, NotFound
from .models import AccessToken, Connection

bp = Blueprint("data", __name__)

MAX_LIMIT = 1000


def _data_token(*scopes: str) -> AccessToken:
    """A live token acting for a user with at least one of ``scopes`` (RFC 6750 §3.1)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        raise InvalidToken("a Bearer access token is required")
    token = fake().access_token(header[7:].strip())
    if token is None or token.sub is None:
        raise InvalidToken("the access token is unknown, expired or not a data token")
    if not token.scopes.intersection(scopes):
        raise InsufficientScope(f"one of these scopes is required: {' '.join(scopes)}")
    return token


def _account_view(account: dict[str, Any], connection: Connection, token: AccessToken) -> dict:
    view = copy.deepcopy(account)
    if "ReadBalances" not in connection.permissions:
        view.pop("balance", None)
    # account numbers need both the scope (seed 001) and the bank permission (seed 003)
    if not (
        "accounts_details:read" in token.scopes and "ReadAccountsDetail" in connection.permissions
    ):
        view.pop("details", None)
    return view


def _accounts(token: AccessToken) -> list[dict[str, Any]]:
    return [
        _account_view(account, connection, token)
        for connection in fake().connections(token.sub or "")
        if connection.permissions & {"ReadAccountsBasic", "ReadAccountsDetail"}
        for account in connection.ledger.accounts
    ]


@bp.get("/accounts")
def accounts() -> Response:
    token = _data_token("accounts:read")
    return jsonify(data=_accounts(token), links={"self": f"{data_api_url()}/accounts"}, meta={})


@bp.get("/accounts/<account_id>")
def account(account_id: str) -> Response:
    token = _data_token("accounts:read")
    for item in _accounts(token):
        if item["id"] == account_id:
            return jsonify(data=item, meta={})
    raise NotFound("no such account")


@bp.get("/transactions")
def transactions() -> Response:
    token = _data_token(*sorted(TRANSACTION_READ_SCOPES))
    limit = _int_arg("limit", 100, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, None)
    account_id = request.args.get("accountId")
    start, end = request.args.get("startDate"), request.args.get("endDate")
    items: list[dict[str, Any]] = []
    for connection in fake().connections(token.sub or ""):
        credits_ok = _sign_allowed(token, connection, credit=True)
        debits_ok = _sign_allowed(token, connection, credit=False)
        for item in connection.ledger.transactions:
            value = item["amount"]["value"]
            if (value >= 0 and not credits_ok) or (value < 0 and not debits_ok):
                continue
            if account_id and item["accountId"] != account_id:
                continue
            if (start and item["date"][:10] < start) or (end and item["date"][:10] > end):
                continue
            items.append(item)
    items.sort(key=lambda t: t["date"], reverse=True)
    page = items[offset: offset + limit]
    links = {"self": request.url}
    if offset + limit < len(items):
        links["next"] = f"{data_api_url()}/transactions?limit={limit}&offset={offset + limit}"
    return jsonify(data=page, links=links, meta={"total": len(items)})


def _sign_allowed(token: AccessToken, connection: Connection, *, credit: bool) -> bool:
    """``transactions:read:in``/``:out`` (seed 001) and the bank permission (seed 003)."""
    scope = "transactions:read:in" if credit else "transactions:read:out"
    permission = "ReadTransactionsCredits" if credit else "ReadTransactionsDebits"
    in_scope = "transactions:read:all" in token.scopes or scope in token.scopes
    return in_scope and permission in connection.permissions


def _int_arg(name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise InvalidRequest(f"{name} is out of range")
    return value
