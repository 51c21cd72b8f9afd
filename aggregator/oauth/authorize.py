"""The authorization endpoint (RFC 6749 §4.1, OIDC Core §3) and the person's consent.

``/authorize`` reads as the protocol's steps:

1. read the parameters (one value each)            RFC 6749 §3.1
2. identify the client                               (shown, never redirected)
3. take a pushed request or verify a request object  RFC 9126 §4, RFC 9101 §5
4. validate the redirect URI                         RFC 6749 §3.1.2.3 (shown, never redirected)
5. enforce PAR where required, validate the rest     RFC 9126 §5, RFC 7636 §4.4.1
6. remember the request server-side, then proceed:
   log in -> (existing grant | consent page) -> code (+ ID token) with ``iss``   RFC 9207
"""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

from flask import Response, redirect, render_template, request, session, url_for

from aggregator.accounts.current import current_person, login_required
from aggregator.errors import (
    AccessDenied,
    ConsentRequired,
    InvalidRequest,
    InvalidRequestUri,
    LoginRequired,
    ProtocolError,
)
from aggregator.oauth import pending as pending_requests
from aggregator.oauth.authorization_request import (
    AuthorizationRequest,
    redirect_target,
    validate,
    with_request_object,
)
from aggregator.oauth.blueprints import pages
from aggregator.oauth.consent import (
    SelectionRefused,
    institution_groups,
    scope_lines,
    selected_registrations,
)
from aggregator.oauth.consents import covering_grant, record_consent
from aggregator.oauth.id_token import issue_id_token
from aggregator.oauth.params import single_values
from aggregator.oauth.pending import Pending
from aggregator.oauth.responses import respond, respond_error
from aggregator.oauth.scopes import data_scopes
from aggregator.security import csrf_exempt
from aggregator.services import Services, services
from aggregator.store.clients import ClientRecord
from aggregator.store.grants import Grant
from aggregator.store.people import PersonRecord


@pages.route("/authorize", methods=["GET", "POST"])
@csrf_exempt  # a protocol request from the app (OIDC Core §3.1.2.1 allows POST), not a form of ours
def authorize() -> Response:
    svc = services()
    params = single_values(request.args if request.method == "GET" else request.form)
    client = _client(svc, params)
    params, pushed = _pushed_or_signed(svc, client, params)
    target = redirect_target(svc, client, params)
    try:
        if (svc.settings.require_par or client.require_pushed_authorization_requests) and not pushed:
            raise InvalidRequest("This client must push its authorization request (PAR) first.")
        authorization = validate(client, params, target)
    except ProtocolError as exc:
        return respond_error(target, exc)
    pending = pending_requests.remember(svc, authorization)
    return proceed(svc, pending)


def _client(svc: Services, params: dict[str, str]) -> ClientRecord:
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRequest("The app did not say who it is (client_id is missing).")
    client = svc.store.clients.get(client_id)
    if client is None:
        raise InvalidRequest("The app that sent you here is not registered with us.")
    return client


def _pushed_or_signed(svc: Services, client: ClientRecord,
                      params: dict[str, str]) -> tuple[dict[str, str], bool]:
    """The parameters that count, and whether they were pushed (RFC 9126 §4)."""
    request_uri = params.get("request_uri")
    if request_uri is None:
        return with_request_object(svc, client, params), False
    if "request" in params:
        raise InvalidRequest("Send request or request_uri, not both.")
    pushed = svc.store.pushed_requests.take(request_uri)  # single use
    if pushed is None:
        raise InvalidRequestUri("This authorization request has expired or was already used. "
                                "Go back to the app and start again.")
    if pushed.client_id != client.client_id:
        raise InvalidRequestUri("This authorization request belongs to another app.")
    return pushed.params, True


# ------------------------------------------------------------------ after the request is known


def proceed(svc: Services, pending: Pending, *, show_consent: bool = False) -> Response:
    """Log in, then reuse a covering grant or ask for consent; finally answer the client."""
    authorization = pending.authorization
    try:
        person = _logged_in(pending)
        if person is None:
            return _to_login(pending)
        client = _still_registered(svc, authorization)
        grant = None
        if "consent" not in authorization.prompt:
            grant = covering_grant(svc, client.client_id, person.id, authorization.scopes)
        if grant is not None:
            return _issue(svc, client, pending, person, grant)
        if "none" in authorization.prompt:
            raise ConsentRequired("The person has not allowed this yet (prompt=none).")
    except ProtocolError as exc:
        return _fail(svc, pending, exc)
    if not show_consent:
        return redirect(pending_requests.continue_url(pending), code=303)
    return _consent_page(svc, client, pending, person)


def _logged_in(pending: Pending) -> PersonRecord | None:
    """The person, when their login is good for this request; None sends them to log in."""
    person = current_person()
    if person is not None and not _login_is_stale(pending.authorization, pending):
        return person
    if "none" in pending.authorization.prompt:
        raise LoginRequired("The person is not logged in (prompt=none).")
    return None


def _fail(svc: Services, pending: Pending, error: ProtocolError) -> Response:
    """End the request with an error response to the client (RFC 6749 §4.1.2.1)."""
    svc.store.pending.take(pending.id)
    return respond_error(pending.authorization.target(svc.issuer), error)


def _login_is_stale(authorization: AuthorizationRequest, pending: Pending) -> bool:
    """``prompt=login`` wants a login after the request; ``max_age`` a recent one (OIDC §3.1.2.1).

    A login made for this very request always counts as fresh (else ``max_age=0`` would loop).
    """
    auth_time = int(session.get("auth_time") or 0)
    if auth_time >= pending.created_at:
        return False
    if "login" in authorization.prompt:
        return True
    return authorization.max_age is not None and time.time() - auth_time > authorization.max_age


def _to_login(pending: Pending) -> Response:
    query = urlencode({"next": pending_requests.continue_url(pending)})
    return redirect(f"{url_for('accounts.login')}?{query}", code=303)


def _still_registered(svc: Services, authorization: AuthorizationRequest) -> ClientRecord:
    client = svc.store.clients.get(authorization.client_id)
    if client is None:
        raise InvalidRequest("The app was removed meanwhile.")
    return client


def _issue(svc: Services, client: ClientRecord, pending: Pending, person: PersonRecord,
           grant: Grant) -> Response:
    """Answer the client with a code (and an ID token for ``code id_token``), exactly once."""
    if svc.store.pending.take(pending.id) is None:
        raise InvalidRequest("This sign-in request was already completed.")
    authorization = pending.authorization
    auth_time = int(session.get("auth_time") or time.time())
    code, _ = svc.store.codes.issue(
        client_id=client.client_id, person_id=person.id, grant_id=grant.id,
        redirect_uri=authorization.redirect_uri, scope=authorization.scope,
        code_challenge=authorization.code_challenge, nonce=authorization.nonce,
        auth_time=auth_time, claims=authorization.claims,
        max_age_requested=authorization.max_age is not None,
    )
    params = {"code": code}
    if authorization.response_type == "code id_token":
        params["id_token"] = issue_id_token(
            svc, client, person_id=person.id, nonce=authorization.nonce, auth_time=auth_time,
            include_auth_time=authorization.max_age is not None, code=code,
            state=authorization.state,
        )
    return respond(authorization.target(svc.issuer), params)


# ------------------------------------------------------------------ the consent page


@pages.get("/authorize/continue/<pending_id>")
@login_required
def resume(pending_id: str) -> Response:
    svc = services()
    return proceed(svc, pending_requests.load(svc, pending_id), show_consent=True)


@pages.post("/authorize/continue/<pending_id>")
@login_required
def decide(pending_id: str) -> Response:
    """The person's decision: deny -> ``access_denied``; allow -> grant, then the code."""
    svc = services()
    pending = pending_requests.load(svc, pending_id)
    authorization = pending.authorization
    decision = request.form.get("decision")
    if decision == "deny":
        return _fail(svc, pending, AccessDenied("The person did not allow access."))
    if decision != "allow":
        raise InvalidRequest("Choose Allow or Deny.")
    try:
        person = _logged_in(pending)
        if person is None:
            return _to_login(pending)
        client = _still_registered(svc, authorization)
        registration_ids = None
        if data_scopes(authorization.scopes):
            ticked = request.form.getlist("registration")
            try:
                registration_ids = selected_registrations(svc.store.registrations.list(person.id),
                                                          ticked)
            except SelectionRefused as exc:
                return _consent_page(svc, client, pending, person, error=str(exc),
                                     ticked=set(ticked), status=400)
        grant = record_consent(svc, client.client_id, person.id, authorization.scopes,
                               registration_ids)
        return _issue(svc, client, pending, person, grant)
    except ProtocolError as exc:
        return _fail(svc, pending, exc)


def _consent_page(svc: Services, client: ClientRecord, pending: Pending, person: PersonRecord, *,
                  error: str | None = None, ticked: set[str] | None = None,
                  status: int = 200) -> Response:
    authorization = pending.authorization
    wants_data = bool(data_scopes(authorization.scopes))
    registrations = svc.store.registrations.list(person.id) if wants_data else []
    plugins = svc.plugins
    continue_url = pending_requests.continue_url(pending)
    html = render_template(
        "oauth_consent.html",
        client=client,
        redirect_host=urlsplit(authorization.redirect_uri).netloc,
        scopes=scope_lines(authorization.scopes),
        wants_data=wants_data,
        groups=institution_groups(registrations),
        provider_names={name: plugin.display_name for name, plugin in plugins.items()},
        ticked=ticked,
        error=error,
        action=continue_url,
        connect_url=url_for("registry.new_connection", next=continue_url),
    )
    return Response(html, status)
