"""Each institution's resource server: userinfo, accounts and transactions (RFC 6750 Bearer).

Shapes are documented in docs/sandbox-bank.md; the data comes from :mod:`.data`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import Blueprint, request

from .context import current_bank
from .data import Portfolio, account_json, portfolio, transaction_json
from .errors import (
    ForbiddenCustomerError,
    InsufficientScopeError,
    InvalidTokenError,
    MissingTokenError,
    NotFoundError,
)
from .faults import inject_latency
from .institutions import Customer, Institution
from .store import TokenRecord

bp = Blueprint("api", __name__)
bp.before_request(inject_latency)


@bp.get("/<institution:institution>/userinfo")
def userinfo(institution: Institution) -> dict[str, Any]:
    token = bearer_token(institution)
    customer = Customer.of(token)
    return {
        "sub": token.user_id,
        "name": token.username,
        "endpoint": customer.endpoint(current_bank().settings.public_url),
    }


@bp.get("/<institution:institution>/users/<user_id>/accounts")
def accounts(institution: Institution, user_id: str) -> dict[str, Any]:
    token = bearer_token(institution, user_id=user_id, scope="accounts")
    data = _with_payments(institution, user_id)
    with_balance = "balances" in token.scope.split()
    return {"data": [account_json(data, a, with_balance=with_balance) for a in data.accounts]}


@bp.get("/<institution:institution>/users/<user_id>/transactions")
def transactions(institution: Institution, user_id: str) -> dict[str, Any]:
    bearer_token(institution, user_id=user_id, scope="transactions")
    data = _with_payments(institution, user_id)
    start, end = _date_param("from"), _date_param("to")
    if start and end and start > end:
        raise InvalidRequestError("'from' is after 'to'.")
    account_id = request.args.get("account_id")
    if account_id is not None and data.account(account_id) is None:
        raise NotFoundError("Unknown 'account_id'.")
    return {
        "data": [
            transaction_json(t)
            for t in data.transactions
            if (account_id is None or t.account_id == account_id)
            and (start is None or t.date >= start)
            and (end is None or t.date <= end)
        ]
    }


def _with_payments(institution: Institution, user_id: str) -> Portfolio:
    """The customer's data, with the payments they made here."""
    return portfolio(institution, user_id,
                     payments=current_bank().store.customer_payments(institution.slug, user_id))


def bearer_token(
    institution: Institution, *, user_id: str | None = None, scope: str | None = None
) -> TokenRecord:
    """The request's access token, checked for this institution, customer and scope.

    Only the Authorization header is accepted (RFC 6750 §2.1, the one method servers MUST
    support); query and body tokens leak into logs and caches.
    """
    realm = institution.slug
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise MissingTokenError(realm=realm)
    record = current_bank().store.find_token(credentials.strip()) if credentials.strip() else None
    if record is None or record.kind != "access_token" or record.institution != realm:
        raise InvalidTokenError(realm=realm)
    if user_id is not None and record.user_id != user_id:
        raise ForbiddenCustomerError()
    if scope and scope not in record.scope.split():
        raise InsufficientScopeError(realm=realm, scope=scope)
    return record


def _date_param(name: str) -> date | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"'{name}' must be an ISO 8601 date (YYYY-MM-DD).") from None
