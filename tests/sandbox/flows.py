"""What a client of the sandbox bank does, step by step, with Authlib's requests client."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.fixtures.sandbox import SandboxBank

# A loopback callback nobody listens on: tests read the bank's redirect instead of following it.
REDIRECT_URI = "http://127.0.0.1:9/callback"
ALL_SCOPES = "accounts balances transactions"


def oauth_client(
    bank: SandboxBank,
    institution: str = "astoria",
    scope: str = ALL_SCOPES,
    auth_method: str = "client_secret_basic",
) -> OAuth2Session:
    return OAuth2Session(
        bank.client_id,
        bank.client_secret,
        scope=scope,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
        token_endpoint=f"{bank.issuer(institution)}/token",
    )


def connect(
    bank: SandboxBank,
    institution: str = "astoria",
    username: str = "alice",
    scope: str = ALL_SCOPES,
    auth_method: str = "client_secret_basic",
) -> tuple[OAuth2Session, dict[str, Any]]:
    """The whole code flow with PKCE: the client's session and its token response."""
    client = oauth_client(bank, institution, scope, auth_method)
    verifier = generate_token(48)
    url, _ = client.create_authorization_url(
        f"{bank.issuer(institution)}/authorize", code_verifier=verifier
    )
    callback = bank.login_and_approve(url, username=username)
    token = client.fetch_token(authorization_response=callback, code_verifier=verifier)
    return client, token


def query(url: str) -> dict[str, str]:
    """A redirect's query parameters (single-valued)."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def token_request(bank: SandboxBank, institution: str = "astoria", **form: str) -> requests.Response:
    """A raw token request with client_secret_basic."""
    return requests.post(
        f"{bank.issuer(institution)}/token",
        data=form,
        auth=(bank.client_id, bank.client_secret),
        timeout=10,
    )


def api_get(url: str, access_token: str | None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.get(url, headers=headers, params=params, timeout=10)
