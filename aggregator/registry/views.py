"""The person's connections: list, connect, callback, reconnect, remove."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for

from aggregator.accounts.current import current_person, login_required, safe_next
from aggregator.errors import (
    AccessDenied,
    InvalidRequest,
    NotFound,
    ProtocolError,
    TemporarilyUnavailable,
    UpstreamFailed,
    render_error,
)
from aggregator.payments.callback import complete_payment
from aggregator.registry import linking
from aggregator.security import csrf_exempt
from aggregator.services import services
from aggregator.upstream.contract import (
    InvalidLinkOptions,
    LinkDenied,
    LinkInvalid,
    UpstreamError,
    UpstreamUnavailable,
)
from aggregator.web import page_blueprint

bp = page_blueprint("registry", __name__)


@bp.errorhandler(UpstreamError)
def upstream_failed(exc: UpstreamError):
    """A plugin failure on any of these pages, shown to the person with the right status."""
    error: ProtocolError
    if isinstance(exc, LinkDenied):
        error = AccessDenied(exc.description)
    elif isinstance(exc, UpstreamUnavailable):
        error = TemporarilyUnavailable(exc.description)
    elif isinstance(exc, LinkInvalid | InvalidLinkOptions):
        error = InvalidRequest(exc.description)
    else:
        error = UpstreamFailed(exc.description)
    return render_error(error)


@bp.get("/connections")
@login_required
def list_connections():
    person = current_person()
    assert person is not None
    registrations = linking.refresh_statuses(services(), person)
    plugins = services().plugins
    names = {name: plugin.display_name for name, plugin in plugins.items()}
    return render_template("connections.html", registrations=registrations, providers=names)


@bp.get("/connections/new")
@login_required
def new_connection():
    providers = []
    for name, plugin in services().plugins.items():
        try:
            providers.append({"name": name, "display_name": plugin.display_name,
                              "institutions": plugin.institutions(), "error": None})
        except UpstreamError as exc:
            providers.append({"name": name, "display_name": plugin.display_name,
                              "institutions": [], "error": exc.description})
    next_url = safe_next(request.args.get("next"), "/connections")
    return render_template("connect.html", providers=providers, next=next_url)


@bp.post("/connections/new")
@login_required
def start_connection():
    person = current_person()
    assert person is not None
    provider = request.form.get("provider", "")
    institution = request.form.get("institution", "")
    if not provider or not institution:
        raise InvalidRequest("Choose an institution to connect.")
    pending = linking.begin_link(
        services(), person, linking.session_binding(session), provider, institution,
        return_to=safe_next(request.form.get("next"), "/connections"),
    )
    return redirect(pending.redirect_url, code=303)


@bp.post("/connections/<registration_id>/reconnect")
@login_required
def reconnect(registration_id: str):
    person = current_person()
    assert person is not None
    record = services().store.registrations.get(person.id, registration_id)
    if record is None:
        raise NotFound("That connection does not exist.")
    pending = linking.begin_link(
        services(), person, linking.session_binding(session), record.provider,
        record.institution_id, reconnect=record,
    )
    return redirect(pending.redirect_url, code=303)


@bp.route("/connections/callback/<provider>", methods=["GET", "POST"])
@csrf_exempt  # protected by the single-use state bound to this session (RFC 6749 §10.12)
@login_required
def callback(provider: str):
    params = request.form if request.method == "POST" else request.args
    if request.method == "GET" and not params:
        # Hybrid responses arrive in the URL fragment, which only the browser can read.
        return render_template("fragment_relay.html", action=request.path)
    person = current_person()
    assert person is not None
    answer = {key: params.get(key, "") for key in params}
    # the upstream's answer to a payment authorization comes here too, told apart by its state
    paid = complete_payment(services(), person, linking.session_binding(session), provider, answer)
    if paid is not None:
        return paid
    saved, return_to = linking.complete_link(
        services(), person, linking.session_binding(session), provider, answer,
    )
    flash("Connected " + ", ".join(r.institution_name for r in saved) + ".")
    return redirect(return_to, code=303)


@bp.post("/connections/remove")
@login_required
def remove():
    person = current_person()
    assert person is not None
    registration_id = request.form.get("registration", "")
    if not registration_id:
        raise InvalidRequest("Choose the connection to remove.")
    try:
        record = linking.remove_registration(services(), person, registration_id)
    except KeyError:
        raise NotFound("That connection does not exist (it may already be removed).") from None
    except linking.RemovalFailed as exc:
        raise UpstreamFailed(
            "No app can use this connection any more, but the institution could not be told "
            f"to revoke it ({exc}). Try removing it again later."
        ) from None
    flash(f"Removed {record.institution_name}. No app can reach it through us any more.")
    return redirect(url_for("registry.list_connections"), code=303)
