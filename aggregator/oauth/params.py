"""Reading protocol parameters from a request: one value per name, the right content type."""

from __future__ import annotations

from flask import g, request
from werkzeug.datastructures import MultiDict

from aggregator.errors import InvalidRequest

FORM = "application/x-www-form-urlencoded"


def single_values(source: MultiDict) -> dict[str, str]:
    """Parameters as a dict; a repeated name is an error (RFC 6749 §3.1, §3.2)."""
    params: dict[str, str] = {}
    for name in source:
        values = source.getlist(name)
        if len(values) > 1:
            raise InvalidRequest(f"The parameter {name!r} is repeated.")
        params[name] = values[0]
    return params


def form_params() -> dict[str, str]:
    """The body of a POST to a client-authenticated endpoint: form-encoded (RFC 6749 §3.2)."""
    if request.mimetype != FORM:
        raise InvalidRequest(f"Send the parameters as {FORM}.")
    return single_values(request.form)


def require(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"The {name} parameter is required.")
    return value


def no_store() -> None:
    """Mark the response ``Cache-Control: no-store`` (RFC 6749 §5.1)."""
    g.no_store = True
