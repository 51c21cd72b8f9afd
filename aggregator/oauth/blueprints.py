"""The provider's two blueprints: the JSON API that clients call, and the person's pages."""

from __future__ import annotations

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

from aggregator.errors import InvalidRequest, ProtocolError
from aggregator.web import page_blueprint

#: client-facing endpoints: every error is the RFC's JSON, whatever the Accept header says
api = Blueprint("oauth", __name__)
#: the person's pages (authorization, consent, revoking an app): errors render as pages
pages = page_blueprint("oauth_pages", __name__)


@api.errorhandler(ProtocolError)
def _json_error(exc: ProtocolError):
    response = jsonify(exc.body())
    response.status_code = exc.status_code
    response.headers.update(exc.headers)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@api.errorhandler(HTTPException)
def _json_http_error(exc: HTTPException):
    """Werkzeug's own 4xx (a body too large, an unparsable form) as RFC JSON too."""
    if exc.code is None or exc.code < 400:
        return exc
    typed = InvalidRequest("The request is malformed." if exc.code == 400 else exc.name)
    typed.status_code = exc.code
    return _json_error(typed)
