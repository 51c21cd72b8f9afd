"""Who is logged in: the session's person, login/logout, and the ``login_required`` guard."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

from flask import g, redirect, request, session, url_for

from aggregator.services import services
from aggregator.sessions import rotate_session
from aggregator.store.people import PersonRecord

F = TypeVar("F", bound=Callable)


def current_person() -> PersonRecord | None:
    if "person" not in g:
        person_id = session.get("person_id")
        g.person = services().store.people.get(person_id) if person_id else None
        if person_id and g.person is None:  # deleted meanwhile
            session.clear()
    return g.person


def log_in(person: PersonRecord) -> None:
    """Start an authenticated session with a fresh id and CSRF token."""
    session.clear()
    rotate_session()
    session["person_id"] = person.id
    session["auth_time"] = int(time.time())
    g.person = person


def log_out() -> None:
    session.clear()
    g.person = None


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths: never an open redirect."""
    if not target or len(target) > 2048:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_person() is None:
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("accounts.login") + "?" + urlencode({"next": target}))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
