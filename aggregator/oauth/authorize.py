"""The authorization endpoint (RFC 6749 §4.1, OIDC Core §3) and the person's consent.

``/authorize`` reads as the protocol's steps:

1. read the parameters (one value each)            RFC 6749 §3.1
2. identify the client                               (shown, never redirected)
3. take a pushed request or verify a request object  RFC 9126 §4, RFC 9101 §5
4. validate the redirect URI                         RFC 6749 §3.1.2.3 (shown, never redirected)
5. the profile's rules (PAR where required, the      RFC 9126 §5, FAPI 2.0 §5.3.2.2
   redirect URI and response types), validate the rest   RFC 7636 §4.4.1
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
    claim_lines,
    institution_groups,
    scope_lines,
    selected_registrations,
)
from aggregator.oauth.consents import (
    ConsentRequest,
    consent_request,
    covered_pairs,
    record_consent,
    released_claims,
)
from aggregator.oauth.id_token import issue_id_token
from aggregator.oauth.params import single_values
from aggregator.oauth.pending import Pending
from aggregator.oauth.profile import rules
from aggregator.oauth.responses import respond, respond_error
from aggregator.payments.consent import begin_payment, payment_page
from aggregator.security import csrf_exempt
from aggregator.services import Services, services
from aggregator.store.clients import ClientRecord
from aggregator.store.grants import Grant, Pairs
from aggregator.store.payments import PaymentRecord
from aggregator.store.people import PersonRecord
from aggregator.store.registrations import RegistrationRecord


@pages.route("/authorize", methods=["GET", "POST"])
@csrf_exempt  # a protocol request from the app (OIDC Core §3.1.2.1 allows POST), not a form of ours
def authorize() -> Response:
    svc = services()
    params = single_values(request.args if request.method == "GET" else request.form)
    client = _client(svc, params)
    params, pushed = _pushed_or_signed(svc, client, params)
    target = redirect_target(svc, client, params)
    try:
        profile = rules(svc.settings)
        if profile.par_required(client) and not pushed:
            raise InvalidRequest("This client must push its authorization request (PAR) first.")
        profile.check_request(params)
        authorization = validate(client, params, target)
        if authorization.payment is not None and not pushed:  # RFC 9126 §5: required for payments
            raise InvalidRequest("A payment must be pushed (PAR) first, not sent to /authorize.")
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
        consent = consent_request(svc, client, person, authorization)
        # a payment is always the person's own decision, never a standing grant's
        silent = "consent" not in authorization.prompt and authorization.payment is None and \
            authorization.grant_management_action in (None, "merge")
        if silent and consent.covered():
            assert consent.grant is not None
            return _issue(svc, client, pending, person, consent.grant, covered_pairs(consent))
        if "none" in authorization.prompt:  # OIDC Core §3.1.2.6
            raise ConsentRequired("The person has not allowed this yet (prompt=none).")
    except ProtocolError as exc:
        return _fail(svc, pending, exc)
    if not show_consent:
        return redirect(pending_requests.continue_url(pending), code=303)
    return _consent_page(svc, client, pending, consent)


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
           grant: Grant, pairs: Pairs, payment: PaymentRecord | None = None) -> Response:
    """Answer the client with a code (and an ID token for ``code id_token``), exactly once.

    The code carries the pairs of this consent and only the personal claims the person allowed;
    the tokens of a payment's code carry that payment.
    """
    if svc.store.pending.take(pending.id) is None:
        raise InvalidRequest("This sign-in request was already completed.")
    authorization = pending.authorization
    auth_time = int(session.get("auth_time") or time.time())
    claims = released_claims(authorization.claims, grant)
    code, issued = svc.store.codes.issue(
        client_id=client.client_id, person_id=person.id, grant_id=grant.id,
        redirect_uri=authorization.redirect_uri, scope=authorization.scope,
        code_challenge=authorization.code_challenge, nonce=authorization.nonce,
        auth_time=auth_time, claims=claims,
        max_age_requested=authorization.max_age is not None, pairs=pairs,
        dpop_jkt=authorization.dpop_jkt,
    )
    if payment is not None:
        svc.store.payments.link_family(payment, issued.family)
    params = {"code": code}
    if authorization.response_type == "code id_token":
        params["id_token"] = issue_id_token(
            svc, client, person_id=person.id, nonce=authorization.nonce, auth_time=auth_time,
            include_auth_time=authorization.max_age is not None, code=code,
            state=authorization.state, claims=claims,
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
        if authorization.payment is not None:
            return begin_payment(svc, client, pending, person, request.form.getlist("registration"))
        consent = consent_request(svc, client, person, authorization)
        ticked = request.form.getlist("registration")
        try:
            chosen = selected_registrations(_offered(consent), ticked)
        except SelectionRefused as exc:
            return _consent_page(svc, client, pending, consent, error=str(exc),
                                 ticked=frozenset(ticked), status=400)
        grant, pairs = record_consent(svc, client, person, consent, chosen)
        return _issue(svc, client, pending, person, grant, pairs)
    except ProtocolError as exc:
        return _fail(svc, pending, exc)


def _offered(consent: ConsentRequest) -> list[RegistrationRecord]:
    """The institutions the page offers: those the request asks anything of."""
    return [record for record in consent.registrations if record.id in consent.asked]


def _consent_page(svc: Services, client: ClientRecord, pending: Pending, consent: ConsentRequest, *,
                  error: str | None = None, ticked: frozenset[str] | None = None,
                  status: int = 200) -> Response:
    """What is new and what is already shared (OIDC Core §3.1.2.4), one checkbox per institution."""
    authorization = consent.authorization
    if authorization.payment is not None:
        person = current_person()
        assert person is not None
        return payment_page(svc, client, pending, person, error=error, status=status)
    grant = consent.grant
    continue_url = pending_requests.continue_url(pending)
    already = []
    if grant is not None:
        already = [{"name": consent.names[record.id], "scopes": scope_lines(grant.pairs[record.id])}
                   for record in consent.registrations if record.id in grant.registration_ids]
    html = render_template(
        "oauth_consent.html",
        client=client,
        redirect_host=urlsplit(authorization.redirect_uri).netloc,
        scopes=scope_lines(authorization.all_scopes),
        claims=claim_lines(consent.claims),
        wants_data=consent.wants_data,
        connected=bool(consent.registrations),
        named=sorted(frozenset().union(*(ask.institutions or () for ask in authorization.data_asks))),
        groups=institution_groups(_offered(consent)),
        names=consent.names,
        asked={rid: scope_lines(scopes) for rid, scopes in consent.asked.items()},
        already=already,
        provider_names={name: plugin.display_name for name, plugin in svc.plugins.items()},
        ticked=consent.preselected() if ticked is None else ticked,
        error=error,
        action=continue_url,
        connect_url=url_for("registry.new_connection", next=continue_url),
    )
    return Response(html, status)


# ------------------------------------------------------------------ after the bank (payments)


def finish_payment(svc: Services, pending: Pending, person: PersonRecord,
                   outcome: PaymentRecord | ProtocolError) -> Response:
    """The app's authorization response once the person was at their bank: the error, or a code
    whose tokens carry the payment (the grant gains the payment's scopes, never data)."""
    if isinstance(outcome, ProtocolError):
        return _fail(svc, pending, outcome)
    try:
        client = _still_registered(svc, pending.authorization)
        consent = consent_request(svc, client, person, pending.authorization)
        grant, pairs = record_consent(svc, client, person, consent, frozenset())
        return _issue(svc, client, pending, person, grant, pairs, payment=outcome)
    except ProtocolError as exc:
        return _fail(svc, pending, exc)
