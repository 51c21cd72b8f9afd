"""The sandbox bank's settings, parsed and validated from the environment.

Variables (all optional but ``SANDBOX_REDIS_URL``):

``SANDBOX_REDIS_URL``      Redis holding every piece of state (the server keeps none in memory)
``SANDBOX_PORT``           port the server is reached on (default 8001); only shapes the default URL
``SANDBOX_PUBLIC_URL``     base URL of the server (default ``http://127.0.0.1:${SANDBOX_PORT}``)
``SANDBOX_CLIENT_ID``      the one registered confidential client (default ``aggregator``)
``SANDBOX_CLIENT_SECRET``  its secret (default ``sandbox-secret``)
``SANDBOX_SECRET_KEY``     signs the login session cookie (default: a fixed development value)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

DEFAULT_PORT = 8001
DEV_SECRET_KEY = "sandbox-bank-development-session-key"


class SettingsError(ValueError):
    """The environment does not describe a runnable sandbox bank; the message says why."""


@dataclass(frozen=True)
class BankSettings:
    """Validated settings of one sandbox bank server."""

    redis_url: str
    public_url: str
    client_id: str = "aggregator"
    client_secret: str = "sandbox-secret"
    secret_key: str = DEV_SECRET_KEY

    def __repr__(self) -> str:  # keep the secrets out of logs and tracebacks
        return f"BankSettings(redis_url=..., public_url={self.public_url!r}, client_id={self.client_id!r})"


class _EnvironmentSchema(Schema):
    """The environment variables, named as they appear in the environment."""

    class Meta:
        unknown = EXCLUDE  # the environment holds plenty that is not ours

    SANDBOX_REDIS_URL = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^(redis|rediss|unix)://", error="Expected a redis://, rediss:// or unix:// URL."
        ),
    )
    SANDBOX_PORT = fields.Integer(
        load_default=DEFAULT_PORT, validate=validate.Range(min=1, max=65535)
    )
    SANDBOX_PUBLIC_URL = fields.Url(
        load_default=None, schemes={"http", "https"}, require_tld=False
    )
    SANDBOX_CLIENT_ID = fields.String(
        load_default="aggregator", validate=validate.Length(min=1, max=200)
    )
    SANDBOX_CLIENT_SECRET = fields.String(
        load_default="sandbox-secret", validate=validate.Length(min=1, max=500)
    )
    SANDBOX_SECRET_KEY = fields.String(
        load_default=DEV_SECRET_KEY, validate=validate.Length(min=16)
    )

    @post_load
    def _to_settings(self, data: dict[str, Any], **_: Any) -> BankSettings:
        public_url = data["SANDBOX_PUBLIC_URL"] or f"http://127.0.0.1:{data['SANDBOX_PORT']}"
        return BankSettings(
            redis_url=data["SANDBOX_REDIS_URL"],
            # Issuers are built as "{public_url}/{slug}", so no trailing slash.
            public_url=public_url.rstrip("/"),
            client_id=data["SANDBOX_CLIENT_ID"],
            client_secret=data["SANDBOX_CLIENT_SECRET"],
            secret_key=data["SANDBOX_SECRET_KEY"],
        )


def load_settings(environ: Mapping[str, str] | None = None) -> BankSettings:
    """Read the settings from ``environ`` (default: the process environment).

    Empty variables count as unset, the way shells and Makefiles tend to pass them.
    """
    source = os.environ if environ is None else environ
    present = {key: value for key, value in source.items() if key.startswith("SANDBOX_") and value}
    try:
        return _EnvironmentSchema().load(present)
    except ValidationError as error:
        problems = "; ".join(
            f"{name}: {' '.join(map(str, messages))}"
            for name, messages in sorted(error.normalized_messages().items())
        )
        raise SettingsError(f"invalid sandbox bank settings: {problems}") from None
