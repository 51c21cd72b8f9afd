"""Authorization responses: back to the client's redirect URI with ``state`` and ``iss``.

Response modes: ``query`` (RFC 6749 §4.1.2), ``fragment`` and ``form_post`` (OAuth 2.0
Multiple Response Type Encoding Practices, Form Post Response Mode). Every response, success
or error, carries ``iss`` (RFC 9207 §2) and the client's ``state``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Response, redirect, render_template, request

from aggregator.errors import ProtocolError
from aggregator.security import no_store

RESPONSE_MODES = ("query", "fragment", "form_post")


def default_response_mode(response_type: str) -> str:
    """``code`` answers in the query; a response with an ID token in it, in the fragment."""
    return "query" if response_type == "code" else "fragment"


@dataclass(frozen=True)
class ResponseTarget:
    """Where and how an authorization response goes (the redirect URI is already validated)."""

    redirect_uri: str
    response_mode: str
    state: str | None
    issuer: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def respond(target: ResponseTarget, params: dict[str, str]) -> Response:
    """Send ``params`` (plus ``state`` and ``iss``) to the client in its response mode."""
    payload = dict(params)
    if target.state is not None:
        payload["state"] = target.state
    payload["iss"] = target.issuer  # RFC 9207 §2
    no_store()  # the response carries a code or an error for the client alone
    if target.response_mode == "form_post":
        return Response(render_template("oauth_form_post.html", action=target.redirect_uri,
                                        fields=payload), 200)
    parts = urlsplit(target.redirect_uri)
    encoded = urlencode(payload)
    if target.response_mode == "fragment":
        url = urlunsplit((*parts[:4], encoded))
    else:  # RFC 6749 §3.1.2: keep the registered URI's own query component
        query = f"{parts.query}&{encoded}" if parts.query else encoded
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return redirect(url, code=303 if request.method == "POST" else 302)


def respond_error(target: ResponseTarget, error: ProtocolError) -> Response:
    """An authorization error response (RFC 6749 §4.1.2.1) at the validated redirect URI."""
    return respond(target, error.redirect_params())
