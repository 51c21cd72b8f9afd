"""The app factory: one Flask app serving the identity service and the Data API."""

from __future__ import annotations

import time

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from . import data_api, oidc, payments, users
from .context import EXTENSION
from .errors import OAuthError
from .jose import Signer, generate_signing_jwks
from .models import RecordedRequest
from .settings import FakeMoneyhubSettings
from .state import FakeMoneyhub


def create_fake_moneyhub(settings: FakeMoneyhubSettings) -> Flask:
    """A Moneyhub look-alike; its state and controls are ``app.extensions["moneyhub_fake"]``."""
    app = Flask("moneyhub_fake")
    state = FakeMoneyhub(settings)
    app.extensions[EXTENSION] = state
    app.extensions[f"{EXTENSION}.signer"] = Signer(
        settings.signing_jwks or generate_signing_jwks()
    )
    identity = settings.identity_prefix.rstrip("/")
    app.register_blueprint(oidc.bp, url_prefix=f"{identity}/oidc")
    app.register_blueprint(users.bp, url_prefix=identity or None)
    app.register_blueprint(payments.bp, url_prefix=identity or None)
    app.register_blueprint(data_api.bp, url_prefix=settings.data_prefix.rstrip("/"))
    state.endpoints = frozenset(name for name in app.view_functions if name != "static")

    @app.before_request
    def record_and_inject() -> Response | tuple[Response, int] | None:
        state.record(RecordedRequest(
            method=request.method,
            path=request.path,
            endpoint=request.endpoint,
            headers=dict(request.headers),
            args=request.args.to_dict(),
            form=request.form.to_dict(),
            json=request.get_json(silent=True),
            at=state.now(),
        ))
        fault = state.take_fault(request.endpoint)
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status == 0:  # a pure delay
            return None
        if isinstance(fault.body, str):
            return Response(fault.body, status=fault.status, mimetype="text/plain")
        return jsonify(fault.body), fault.status

    @app.errorhandler(OAuthError)
    def oauth_error(error: OAuthError) -> Response:
        return error.response()

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        return jsonify(error="not_found" if code == 404 else "invalid_request",
                       error_description=error.description), code

    return app
