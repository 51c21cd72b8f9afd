"""The sandbox plugin: the generic OIDC plugin pointed at the sandbox bank.

Configured by ``SANDBOX_URL`` (default: the bank's ``SANDBOX_PUBLIC_URL``, else
``http://127.0.0.1:${SANDBOX_PORT:-8001}``),
``SANDBOX_CLIENT_ID`` (default ``aggregator``) and ``SANDBOX_CLIENT_SECRET`` (default
``sandbox-secret``), the same defaults as the bank's. The institutions are the bank's own
(``GET {SANDBOX_URL}/institutions``, each its own issuer), and the API endpoint handed to apps
is the one the bank names for the customer (``endpoint`` in its token response and userinfo).
Payments go through the bank's payment API (:mod:`plugins.sandbox.payments`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from aggregator.upstream.contract import PluginContext, UpstreamUnavailable
from plugins.oidc.config import DEFAULT_SCOPES
from plugins.sandbox.payments import SandboxPayments

INSTITUTIONS_TTL = 3600


class SandboxConfig(Schema):
    """``SANDBOX_*`` variables; the bank's own (``SANDBOX_REDIS_URL`` ...) are not ours."""

    url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    # The bank's own settings, when the same environment starts it: where it says it is.
    public_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    port = fields.Integer(load_default=8001, validate=validate.Range(min=1, max=65535))
    client_id = fields.String(load_default="aggregator", validate=validate.Length(min=1))
    client_secret = fields.String(load_default="sandbox-secret", validate=validate.Length(min=1))

    @post_load
    def _url(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        url = data["url"] or data["public_url"] or f"http://127.0.0.1:{data['port']}"
        data["url"] = url.rstrip("/")
        return data


class SandboxPlugin(SandboxPayments):
    """The four sandbox institutions, through the bank's standard OAuth 2.0 endpoints; it can
    pay too (:mod:`plugins.sandbox.payments`)."""

    name = "sandbox"
    display_name = "Sandbox bank"
    config_schema = SandboxConfig

    def __init__(self, config: Mapping[str, Any], context: PluginContext) -> None:
        self.bank_url = config["url"]
        super().__init__(
            {
                "client_id": config["client_id"],
                "client_secret": config["client_secret"],
                "auth_method": "client_secret_basic",
                "scopes": DEFAULT_SCOPES,  # the bank's scopes are named like ours
                "extra_scopes": "",
            },
            context,
        )

    def institution_entries(self) -> list[dict[str, Any]]:
        """The bank's institutions, cached for an hour."""
        cached = self.context.cache.get("institutions")
        if cached is None:
            cached = self._fetch_institutions()
            self.context.cache.set("institutions", cached, ttl=INSTITUTIONS_TTL)
        return cached

    def _fetch_institutions(self) -> list[dict[str, Any]]:
        response = self.context.http.get(f"{self.bank_url}/institutions")
        try:
            listed = response.json() if response.status_code == 200 else None
        except ValueError:
            listed = None
        if not isinstance(listed, list):
            raise UpstreamUnavailable("The sandbox bank did not list its institutions.")
        return [
            {"id": item["id"], "name": item["name"], "issuer": item["issuer"],
             "endpoint": "{endpoint}"}
            for item in listed
            if isinstance(item, dict)
            and all(isinstance(item.get(key), str) for key in ("id", "name", "issuer"))
        ]
