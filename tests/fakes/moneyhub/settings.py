"""Configuration of the fake: the registered API clients and the fake's own knobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

AuthMethod = Literal["client_secret_basic", "private_key_jwt"]

RESPONSE_TYPES: tuple[str, ...] = ("code", "code id_token", "id_token")


@dataclass
class FakeClient:
    """An API client as registered in Moneyhub's admin portal (seed 001, "API clients").

    ``jwks`` holds the client's *public* keys; ``request_object_signing_alg`` and
    ``token_endpoint_auth_signing_alg`` of ``None`` accept any algorithm the client has a key for.
    """

    client_id: str
    client_secret: str | None = None
    jwks: dict[str, Any] | None = None
    redirect_uris: list[str] = field(default_factory=list)
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    token_endpoint_auth_signing_alg: str | None = None
    id_token_signed_response_alg: str = "RS256"
    request_object_signing_alg: str | None = None
    response_types: tuple[str, ...] = RESPONSE_TYPES
    grant_types: tuple[str, ...] = (
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "implicit",
    )
    #: bank connection lists this client may use; test connections are on by default (seed 001)
    connection_types: frozenset[str] = frozenset({"test", "api", "legacy"})


@dataclass
class FakeMoneyhubSettings:
    """Everything ``create_fake_moneyhub`` needs; times are in seconds."""

    clients: list[FakeClient]
    #: path of the identity service under the server root ("" = at the root, as in production)
    identity_prefix: str = ""
    #: path of the Data API under the server root
    data_prefix: str = "/data/v3"
    access_token_ttl: int = 600
    refresh_token_ttl: int = 90 * 24 * 3600
    id_token_ttl: int = 3600
    code_ttl: int = 60
    request_uri_ttl: int = 90
    #: issue a new refresh token at every refresh_token grant (and retire the old one)
    rotate_refresh_tokens: bool = False
    #: the fake's clock (tests may pass a controllable one)
    clock: Callable[[], float] = time.time
    #: seed for the deterministic ids and the generated bank data
    seed: str = "moneyhub-fake"
    #: private JWKS used to sign id_tokens; generated (RSA + EC P-256) when ``None``
    signing_jwks: dict[str, Any] | None = None
