"""The Grapher's "Pay" action: the person pays £1.50 for Grapher Pro through their AS.

The Grapher is the merchant: it holds no bank client and does not know the person's bank. It
pushes an RFC 9396 ``payment_initiation`` request (PAR is required for payments), the person
picks the institution that pays on the AS's consent page and approves at their bank, and the
Grapher follows the payment at the AS's ``GET /payments/{payment_id}`` with the access token.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import requests
from flask import Blueprint, redirect, render_template, request
from flask.typing import ResponseReturnValue

from examples.grapher import views
from examples.grapher.client import PAY_CALLBACK, PAY_SCOPE, ASClient, ASError
from examples.grapher.visits import PendingAuthorization

bp = Blueprint("pay", __name__)

#: what Grapher Pro costs, and where the money goes
PRICE = {"currency": "GBP", "amount": "1.50"}
CREDITOR = {"creditorName": "Grapher Ltd",
            "creditorAccount": {"sortCode": "123456", "accountNumber": "12345678"}}
REFERENCE = "GRAPHER-PRO"


@dataclass
class FollowedPayment:
    """A payment made to the Grapher, and the token that reads it at the AS."""

    client: ASClient
    payment_id: str
    access_token: str

    @property
    def url(self) -> str:
        return f"{self.client.provider.issuer}/payments/{self.payment_id}"

    def read(self) -> dict[str, Any]:
        """``GET /payments/{payment_id}``: the payment as the AS says it stands now."""
        try:
            response = self.client.http.get(self.url, timeout=self.client.settings.http_timeout,
                                            auth=self.client.token_auth(self.access_token))
            body = response.json()
        except (requests.RequestException, ValueError):
            raise ASError("Could not read the payment at your Authorization Server.") from None
        if response.status_code != 200 or not isinstance(body, dict):
            why = body.get("error_description") if isinstance(body, dict) else None
            raise ASError(f"Your Authorization Server would not show the payment "
                          f"({why or response.status_code}).")
        return body


@bp.post("/pay")
def pay() -> ResponseReturnValue:
    """The "Pay £1.50" button: a pushed payment_initiation request, then off to the AS."""
    if problem := views._check_csrf():
        return views._error(problem, 400)
    grapher, visit = views.grapher(), views.visit()
    connection = visit.connection
    as_url = request.form.get("as_url") or grapher.settings.as_url or \
        (connection.issuer if connection else "")
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    code_verifier = secrets.token_urlsafe(64)
    try:
        client = grapher.clients.client_for(grapher.clients.discover(as_url))
        url = client.authorization_url(
            state, nonce, code_verifier, scope="openid", redirect_uri=_callback(client),
            authorization_details=json.dumps([{
                "type": "payment_initiation", "instructedAmount": PRICE, **CREDITOR,
                "remittanceInformationUnstructured": REFERENCE,
            }]))
    except ASError as exc:
        return views._error(str(exc), 400)
    visit.begin(PendingAuthorization(client, state, nonce, code_verifier))
    return redirect(url, code=303)


@bp.get(PAY_CALLBACK)
def callback() -> ResponseReturnValue:
    """Back from the AS: the payment's code (or why there is none), exchanged for the token."""
    visit = views.visit()
    pending = visit.take_pending(request.args.get("state", ""))
    if pending is None:
        return views._error("This answer does not match a payment started from this browser.", 400)
    client = pending.client
    if request.args.get("iss") != client.provider.issuer:  # RFC 9207 §2.4
        return views._error("The answer came from a different Authorization Server.", 400)
    if request.args.get("error"):
        return render_template("payment.html", payment=None,
                               refused=request.args.get("error_description") or request.args["error"])
    try:
        token = client.exchange_code(request.args.get("code", ""), pending.code_verifier,
                                     redirect_uri=_callback(client))
        payment_id = _payment_id(token)
    except ASError as exc:
        return views._error(str(exc), 502)
    visit.payment = FollowedPayment(client, payment_id, token["access_token"])
    return redirect("/pay/status", code=303)


@bp.get("/pay/status")
def status() -> ResponseReturnValue:
    """The latest payment, as the AS says it stands (pending until the bank settles it)."""
    followed = views.visit().payment
    if followed is None:
        return redirect("/", code=303)
    try:
        payment = followed.read()
    except ASError as exc:
        return views._error(str(exc), 502)
    return render_template("payment.html", payment=payment, refused=None)


def _callback(client: ASClient) -> str:
    return client.settings.base_url + PAY_CALLBACK


def _payment_id(token: dict[str, Any]) -> str:
    """RFC 9396 §7: the payment_initiation entry of the token response names the payment."""
    details = token.get("authorization_details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("type") == "payment_initiation" \
                and isinstance(detail.get("payment_id"), str) and PAY_SCOPE in token.get("scope", ""):
            return detail["payment_id"]
    raise ASError("Your Authorization Server did not say which payment was made.")
