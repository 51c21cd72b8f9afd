"""The Grapher: an example third-party app that charts a person's finances from every institution
their authorization server hands it (the story's "Service Provision" phase).

It is a plain OAuth 2.0 / OpenID Connect client; it imports nothing from the AS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace

import requests
from flask import Flask, Response

from examples.grapher.client import ClientDirectory
from examples.grapher.events import EventInbox
from examples.grapher.keys import ClientKey
from examples.grapher.settings import GrapherSettings, SettingsError
from examples.grapher.visits import Visits

__all__ = ["GrapherSettings", "SettingsError", "create_grapher_app"]

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])


def create_grapher_app(settings: GrapherSettings | Mapping[str, str] | None = None) -> Flask:
    """Build the Grapher. ``settings``: GrapherSettings, an environment-like mapping, or None (os.environ)."""
    from examples.grapher.payments import bp as payments_bp
    from examples.grapher.views import Grapher, bp

    if not isinstance(settings, GrapherSettings):
        settings = GrapherSettings.from_env(settings)
    if not settings.secret_key:
        settings = replace(settings, secret_key=secrets.token_urlsafe(32))
    key = ClientKey.from_jwks(settings.private_jwks) if settings.private_jwks else ClientKey.generate()

    app = Flask(__name__)
    app.secret_key = settings.secret_key
    app.config.update(
        # Not "session": the AS on the same host (another port) has its own cookie, and cookies
        # do not tell ports apart.
        SESSION_COOKIE_NAME="grapher_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.extensions["grapher"] = Grapher(settings, ClientDirectory(settings, key), Visits(),
                                        requests.Session())
    app.extensions["grapher_events"] = EventInbox(settings.http_timeout)
    app.register_blueprint(bp)
    app.register_blueprint(payments_bp)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # The callback URL carries the authorization code: never leak it in a Referer.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
