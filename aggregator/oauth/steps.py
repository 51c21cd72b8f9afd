"""The opening steps every client-authenticated endpoint shares, in this order:

1. ``no_store``      the answer (errors included) is never cached     RFC 6749 §5.1, RFC 7662 §2.2
2. ``parse_body``    a form body, one value per parameter             RFC 6749 §3.2, RFC 7662 §2.1
3. ``authenticate``  the client, with the one method it registered    RFC 6749 §2.3, RFC 7523 §3

Token, PAR, revocation, introspection and grant management open with :func:`client_request`,
so the same fault gets the same error at each of them.
"""

from __future__ import annotations

from typing import NamedTuple

from flask import g, request

from aggregator.errors import UnsupportedMediaType
from aggregator.oauth.client_auth import authenticate_client
from aggregator.oauth.params import FORM, single_values
from aggregator.security import no_store
from aggregator.store.clients import ClientRecord

__all__ = ["ClientRequest", "authenticate", "client_request", "no_store", "parse_body"]


class ClientRequest(NamedTuple):
    """What the opening steps establish: the parameters, and the authenticated client."""

    params: dict[str, str]
    client: ClientRecord


def parse_body() -> dict[str, str]:
    """The form parameters; a body of any other type is refused (415), a repeated name too."""
    if request.content_length and request.mimetype != FORM:
        raise UnsupportedMediaType(f"Send the parameters as {FORM}.")
    return single_values(request.form)


def authenticate(endpoint_url: str) -> ClientRecord:
    """The calling client (``endpoint_url`` is an accepted assertion audience); logged by id."""
    client = authenticate_client(endpoint_url)
    g.log_client_id = client.client_id
    return client


def client_request(endpoint_url: str) -> ClientRequest:
    """Run the opening steps for the endpoint at ``endpoint_url``."""
    no_store()
    params = parse_body()
    return ClientRequest(params, authenticate(endpoint_url))
