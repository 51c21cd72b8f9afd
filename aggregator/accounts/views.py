"""Sign-up, login, logout and the dashboard."""

from __future__ import annotations

import logging

from flask import redirect, render_template, request, url_for
from marshmallow import ValidationError

from aggregator.accounts.current import (
    current_person,
    log_in,
    log_out,
    login_required,
    safe_next,
)
from aggregator.accounts.forms import LoginForm, SignupForm
from aggregator.security import client_ip
from aggregator.services import services
from aggregator.store.people import UsernameTaken
from aggregator.web import page_blueprint

bp = page_blueprint("accounts", __name__)
log = logging.getLogger("aggregator.accounts")


def _errors(exc: ValidationError) -> dict[str, str]:
    return {name: " ".join(messages) for name, messages in exc.messages.items()}  # type: ignore[union-attr]


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("signup.html", next=next_url, errors={}, username="")
    try:
        form = SignupForm().load(request.form)
    except ValidationError as exc:
        return render_template("signup.html", next=next_url, errors=_errors(exc),
                               username=request.form.get("username", "")), 400
    store = services().store
    if not store.signup_throttle.reserve({"ip": client_ip()}):  # before the username is looked up
        return render_template("signup.html", next=next_url, username=form["username"],
                               errors={"username": "Too many sign-ups from your network. "
                                                   "Wait an hour and try again."}), 429
    try:
        person = store.people.create(form["username"], services().passwords.hash(form["password"]))
    except UsernameTaken:
        return render_template("signup.html", next=next_url,
                               errors={"username": "That username is taken."},
                               username=form["username"]), 409
    log.info("person signed up", extra={"person_id": person.id})
    log_in(person)
    return redirect(next_url)


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=next_url, error=None, username="")
    try:
        form = LoginForm().load(request.form)
    except ValidationError:
        return render_template("login.html", next=next_url, username="",
                               error="Enter your username and password."), 400
    store = services().store
    attempt = {"user": form["username"].lower(), "ip": client_ip()}
    # reserved before the password is checked, so concurrent guesses cannot all slip under the limit
    if not store.login_throttle.reserve(attempt):
        return render_template("login.html", next=next_url, username=form["username"],
                               error="Too many failed attempts. Wait 15 minutes and try again."), 429
    person = store.people.find_by_username(form["username"])
    passwords = services().passwords
    if not passwords.verify(person.password_hash if person else None, form["password"]):
        log.info("login failed")
        return render_template("login.html", next=next_url, username=form["username"],
                               error="That username and password do not match."), 401
    assert person is not None
    store.login_throttle.release(attempt, reset=("user",))
    if passwords.needs_rehash(person.password_hash):
        store.people.set_password_hash(person.id, passwords.hash(form["password"]))
    log_in(person)
    log.info("person logged in", extra={"person_id": person.id})
    return redirect(next_url)


@bp.post("/logout")
def logout():
    log_out()
    return redirect(url_for("accounts.login"))


@bp.get("/")
@login_required
def dashboard():
    person = current_person()
    assert person is not None
    from aggregator.accounts.dashboard import dashboard_context

    return render_template("dashboard.html", person=person, **dashboard_context(person))
