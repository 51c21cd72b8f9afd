"""Per-request access to the fake's state, signer and public URLs."""

from __future__ import annotations

from flask import current_app, request

from .jose import Signer
from .state import FakeMoneyhub

EXTENSION = "moneyhub_fake"


def fake() -> FakeMoneyhub:
    return current_app.extensions[EXTENSION]


def signer() -> Signer:
    return current_app.extensions[f"{EXTENSION}.signer"]


def identity_url() -> str:
    """The identity service base (``https://identity.moneyhub.co.uk`` in production).

    Derived from the request, because tests serve the fake on a port chosen at start-up.
    """
    return request.root_url.rstrip("/") + fake().settings.identity_prefix


def issuer() -> str:
    return f"{identity_url()}/oidc"


def data_api_url() -> str:
    return request.root_url.rstrip("/") + fake().settings.data_prefix
