"""The Grapher's settings, read from ``GRAPHER_*`` environment variables."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 8002
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class SettingsError(Exception):
    """The environment does not describe a runnable Grapher; the message names the variable."""


@dataclass(frozen=True)
class GrapherSettings:
    """Where the Grapher listens and how it is known to authorization servers.

    ``client_id`` + ``private_jwks`` describe a client registered beforehand at ``as_url``;
    without them the Grapher registers itself (RFC 7591) with ``initial_access_token``.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    as_url: str | None = None
    initial_access_token: str | None = None
    client_id: str | None = None
    private_jwks: Mapping[str, Any] | None = None
    secret_key: str = ""
    http_timeout: float = 10.0
    #: FAPI 2.0 mode at every AS (it is also on at an AS whose discovery requires PAR): DPoP-bound tokens
    fapi2: bool = False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GrapherSettings:
        env = {k: v for k, v in (os.environ if environ is None else environ).items() if v != ""}
        try:
            port = int(env.get("GRAPHER_PORT", DEFAULT_PORT))
        except ValueError:
            raise SettingsError("GRAPHER_PORT: must be a port number.") from None
        if not 0 <= port <= 65535:
            raise SettingsError("GRAPHER_PORT: must be a port number.")
        as_url = env.get("GRAPHER_AS_URL")
        if as_url is not None and urlsplit(as_url).scheme not in ("http", "https"):
            raise SettingsError("GRAPHER_AS_URL: must be an http:// or https:// URL.")
        jwks = _load_jwks(env["GRAPHER_PRIVATE_JWKS"]) if "GRAPHER_PRIVATE_JWKS" in env else None
        client_id = env.get("GRAPHER_CLIENT_ID")
        if bool(client_id) != bool(jwks):
            raise SettingsError("GRAPHER_CLIENT_ID and GRAPHER_PRIVATE_JWKS go together: a configured "
                                "client authenticates with private_key_jwt.")
        fapi2 = env.get("GRAPHER_FAPI2", "false").lower()
        if fapi2 not in _BOOLEANS:
            raise SettingsError("GRAPHER_FAPI2: true or false.")
        if client_id and not as_url:
            raise SettingsError("GRAPHER_CLIENT_ID: also set GRAPHER_AS_URL, the AS it is registered at.")
        return cls(
            host=env.get("GRAPHER_HOST", "127.0.0.1"),
            port=port,
            as_url=as_url.rstrip("/") if as_url else None,
            initial_access_token=env.get("GRAPHER_INITIAL_ACCESS_TOKEN"),
            client_id=client_id,
            private_jwks=jwks,
            # One random key per process is enough: sessions live in this process's memory anyway.
            secret_key=env.get("GRAPHER_SECRET_KEY") or secrets.token_urlsafe(32),
            fapi2=_BOOLEANS[fapi2],
        )


def _load_jwks(value: str) -> dict[str, Any]:
    """``GRAPHER_PRIVATE_JWKS``: a JWK Set as JSON, or ``@path`` to a file holding one."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        jwks = json.loads(text)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"GRAPHER_PRIVATE_JWKS: not a readable JWK Set ({exc}).") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise SettingsError('GRAPHER_PRIVATE_JWKS: expected {"keys": [<private JWK>, ...]}.')
    return jwks
