"""The Grapher's pages: connect (the story's "AS" button), the callback, and the charts."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from flask import Blueprint, current_app, g, redirect, render_template, request, session

from examples.grapher import banks, charts
from examples.grapher.client import AccessEnded, ASError, ClientDirectory
from examples.grapher.dpop import bound_to
from examples.grapher.events import REVOKED
from examples.grapher.finances import format_money, summarize
from examples.grapher.settings import GrapherSettings
from examples.grapher.visits import Connection, PendingAuthorization, Visit, Visits

bp = Blueprint("grapher", __name__)


@dataclass
class Grapher:
    """What the views share: settings, our clients at each AS, the visits, an HTTP session."""

    settings: GrapherSettings
    clients: ClientDirectory
    visits: Visits
    http: requests.Session


def grapher() -> Grapher:
    return current_app.extensions["grapher"]


def visit() -> Visit:
    return g.visit


@bp.before_app_request
def _load_visit() -> None:
    visit_id, g.visit = grapher().visits.get_or_create(session.get("visit"))
    if session.get("visit") != visit_id:
        session["visit"] = visit_id


@bp.app_context_processor
def _template_helpers() -> dict[str, object]:
    return {"csrf_token": visit().csrf, "money": format_money}


def _check_csrf() -> str | None:
    supplied = request.form.get("csrf_token", "")
    if not hmac.compare_digest(supplied, visit().csrf):
        return "That form has expired. Please try again."
    return None


def _error(message: str, status: int):
    return render_template("error.html", message=message), status


@bp.get("/")
def home():
    connection = visit().connection
    if connection is None:
        return _home_page()
    inbox = current_app.extensions["grapher_events"]
    news, revoked = inbox.news_for(connection.client, connection.grant_id)
    try:
        if revoked:  # the AS told us at once (an SSF event): no need to ask it
            raise AccessEnded(REVOKED)
        answer = connection.introspect()
    except AccessEnded:
        visit().connection = None
        visit().ended_at = connection.issuer
        if revoked or inbox.news_for(connection.client, connection.grant_id)[1]:
            visit().notice = REVOKED  # why it ended, when the AS's event said so
        return _home_page()
    except ASError as exc:
        return render_template("error.html", message=str(exc), retry=True), 502
    settings = grapher().settings
    institutions = answer.get("institutions")
    data = banks.fetch_all(institutions if isinstance(institutions, dict) else {}, grapher().http,
                           settings.http_timeout)
    finances = summarize(data, datetime.now(UTC).date())
    palette = charts.colors(finances.charted)
    return render_template(
        "finances.html", connection=connection, finances=finances, palette=palette,
        balance_chart=charts.balance_chart(finances.balances, finances.currency, palette),
        spending_chart=charts.spending_chart(finances.spending, finances.currency, palette),
        notice=" ".join(filter(None, [visit().take_notice(), *news])) or None,
        dpop_bound=bound_to(answer, connection.client.dpop),
    )


def _home_page(error: str | None = None, status: int = 200):
    settings = grapher().settings
    return render_template(
        "home.html", as_url=request.form.get("as_url") or settings.as_url or "",
        ended_at=visit().ended_at, notice=visit().take_notice(), error=error,
    ), status


@bp.post("/connect")
def connect():
    """The "AS" button: discovery, our client there, then off to the AS with a pushed request."""
    if problem := _check_csrf():
        return _home_page(problem, 400)
    as_url = request.form.get("as_url") or grapher().settings.as_url or ""
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    code_verifier = secrets.token_urlsafe(64)  # RFC 7636 §4.1: 43-128 characters
    clients = grapher().clients
    try:
        provider = clients.discover(as_url)
        client = clients.client_for(provider)
        try:
            url = client.authorization_url(state, nonce, code_verifier)
        except ASError as exc:
            # The AS lost our registration (its data was reset): register again, once.
            if exc.error != "invalid_client" or not clients.forget(client):
                raise
            client = clients.client_for(provider)
            url = client.authorization_url(state, nonce, code_verifier)
    except ASError as exc:
        return _home_page(str(exc), 400)
    visit().begin(PendingAuthorization(client, state, nonce, code_verifier))
    return redirect(url, code=303)


@bp.get("/callback")
def callback():
    """The redirection endpoint (RFC 6749 §3.1.2): check the answer, exchange the code, keep the token."""
    pending = visit().take_pending(request.args.get("state", ""))
    if pending is None:
        return _error("This answer from an Authorization Server does not match a request made from "
                      "this browser, or it came too late. Start again from the Grapher's home page.", 400)
    client = pending.client
    # RFC 9207 §2.4: the iss parameter, when sent or promised, must name the AS we asked (mix-up);
    # FAPI 2.0 Security Profile §5.3.2.2: always required.
    iss = request.args.get("iss")
    if (iss is not None or client.fapi2
            or client.provider.metadata.get("authorization_response_iss_parameter_supported")) \
            and iss != client.provider.issuer:
        return _error("The answer came from a different Authorization Server than the one you chose.", 400)
    if error := request.args.get("error"):
        if error == "access_denied":
            visit().notice = "You did not allow the Grapher to see your data, so nothing was shared."
            return redirect("/", code=303)
        return _error(f"Your Authorization Server said: {request.args.get('error_description') or error}.",
                      400)
    code = request.args.get("code")
    if not code:
        return _error("Your Authorization Server sent no authorization code.", 400)
    try:
        token = client.exchange_code(code, pending.code_verifier)
        if not isinstance(token.get("id_token"), str):
            raise ASError("Your Authorization Server sent no ID token.")
        claims = client.verify_id_token(token["id_token"], pending.nonce)
        if client.fapi2:  # the bound token works where it should, with our key's proof
            client.userinfo(token["access_token"], claims["sub"])
        endpoint = client.trusted_introspection_endpoint(token)
    except ASError as exc:
        return _error(str(exc), 502)
    visit().connection = Connection(client, token, endpoint, claims["sub"], token.get("grant_id"))
    visit().ended_at = None
    visit().pending.clear()
    return redirect("/", code=303)


@bp.post("/disconnect")
def disconnect():
    """Forget the connection and tell the AS (RFC 7009) that we no longer need the tokens."""
    if problem := _check_csrf():
        return _home_page(problem, 400)
    connection, visit().connection = visit().connection, None
    if connection is not None:
        if connection.token.get("refresh_token"):
            connection.client.revoke(connection.token["refresh_token"], "refresh_token")
        connection.client.revoke(connection.token["access_token"], "access_token")
        visit().notice = "The Grapher has forgotten your data and given up its access."
    return redirect("/", code=303)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}
