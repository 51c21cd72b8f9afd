"""The sandbox bank's application factory."""

from __future__ import annotations

import redis
from flask import Flask, Response

from .context import EXTENSION, Bank
from .errors import TemporarilyUnavailableError, json_error, register_error_handlers
from .institutions import InstitutionConverter
from .oauth import BankAuthorizationServer
from .settings import BankSettings
from .store import BankStore


def create_bank_app(settings: BankSettings) -> Flask:
    """A WSGI app serving all four institutions; every piece of state lives in Redis."""
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Cookies ignore ports, so the bank and the aggregator on the same loopback host would
        # overwrite each other's "session" cookie: the bank's gets its own name.
        SESSION_COOKIE_NAME="sandbox_bank_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https:"),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep documents in reading order
    app.url_map.converters["institution"] = InstitutionConverter

    store = BankStore(redis.Redis.from_url(settings.redis_url, decode_responses=True))
    app.extensions[EXTENSION] = Bank(settings, store, BankAuthorizationServer(settings, store))

    from . import admin, api, authorize, metadata, payments, token

    for module in (metadata, authorize, token, api, payments, admin):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    app.register_error_handler(redis.RedisError, _storage_unavailable)
    app.after_request(_security_headers)
    return app


def _storage_unavailable(_: redis.RedisError) -> Response:
    # Without Redis the bank knows nothing; say so as an outage rather than a crash.
    return json_error(TemporarilyUnavailableError("The bank's storage is unavailable."))


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        # No framing (clickjacking of the approval button) and nothing cached.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers.setdefault("Cache-Control", "no-store")
    return response
