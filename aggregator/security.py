"""Request hygiene shared by every endpoint: CSRF, secure headers, body limits, request ids."""

from __future__ import annotations

import hmac
import itertools
import os
import re
import secrets
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, g, request, session
from werkzeug.middleware.proxy_fix import ProxyFix

from aggregator.errors import InvalidRequest
from config import Settings

F = TypeVar("F", bound=Callable)

CSRF_FIELD = "csrf_token"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class _RequestIds:
    """Request ids unique per process without a system call each: a random prefix drawn once
    per process (again after a fork) and a counter. They name log lines; they are not secrets."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def next(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._prefix = os.getpid(), secrets.token_hex(4)
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"


_request_ids = _RequestIds()

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "img-src 'self' data: https:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])


def csrf_exempt(view: F) -> F:
    """Mark a client-authenticated API endpoint (no cookies involved) as exempt from CSRF."""
    view._csrf_exempt = True  # type: ignore[attr-defined]
    return view


def csrf_token() -> str:
    """The session's CSRF token (created on first use); templates call this."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "_csrf_exempt", False):
        return
    expected = session.get("csrf")
    supplied = request.form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token")
    if not expected or not supplied or not hmac.compare_digest(expected, supplied):
        raise InvalidRequest("The form has expired or did not come from this site. "
                             "Go back, reload the page and try again.")


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1), if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def no_store() -> None:
    """Mark this request's answer ``Cache-Control: no-store`` (RFC 6749 §5.1): it carries
    tokens, codes or secrets. The one place the header is written is ``_headers`` below."""
    g.no_store = True


def client_ip() -> str:
    """The client's address: behind ``AGGREGATOR_TRUST_PROXY`` proxies, Werkzeug's ProxyFix has
    already taken it from that many hops from the right of ``X-Forwarded-For`` (the leftmost
    entries are whatever the client chose to send)."""
    return request.remote_addr or "unknown"


def init_security(app: Flask, settings: Settings) -> None:
    if settings.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trust_proxy,  # type: ignore[method-assign]
                                x_proto=settings.trust_proxy)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_body_bytes
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _request_id() -> None:
        supplied = request.headers.get("X-Request-Id", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else _request_ids.next()

    app.before_request(_check_csrf)

    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if settings.secure_cookies:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        # pages and errors are never cached, nor anything marked by no_store()
        if getattr(g, "no_store", False) or response.mimetype == "text/html" \
                or response.status_code >= 400:
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        headers["X-Request-Id"] = getattr(g, "request_id", "")
        return response
