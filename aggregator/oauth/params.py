"""Protocol parameters: one value per name (RFC 6749 §3.1, §3.2), required ones present."""

from __future__ import annotations

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


def require(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"The {name} parameter is required.")
    return value
