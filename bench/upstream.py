"""The benchmark's upstream: a lean fake bank token endpoint and the plugin that calls it.

The bank (``gunicorn bench.upstream:app``) answers refresh-token grants after the configured
latency, with tokens of the configured lifetime, and counts them; it spends almost no CPU, so
the figures measure the AS, not the bank. The plugin is enabled like any installed plugin: a
distribution with an ``aggregator.plugins`` entry point (written by :func:`install`).
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask, jsonify, request
from marshmallow import EXCLUDE, Schema, fields

from aggregator.upstream.contract import (
    InvalidLinkOptions,
    ReauthRequired,
    TokenResult,
    UpstreamPlugin,
    UpstreamToken,
    UpstreamUnavailable,
)

# ----------------------------------------------------------------------------- the bank

app = Flask(__name__)
_state: dict[str, Any] = {"latency_ms": 0, "access_token_ttl": 3600, "refreshes": 0}
_mutex = threading.Lock()


@app.post("/token")
def token():
    with _mutex:
        _state["refreshes"] += 1
    time.sleep(_state["latency_ms"] / 1000)
    if request.form.get("grant_type") != "refresh_token" or not request.form.get(
            "refresh_token", "").startswith("rt-"):
        return jsonify(error="invalid_grant"), 400
    return jsonify(access_token="at-" + secrets.token_urlsafe(16), token_type="Bearer",
                   expires_in=_state["access_token_ttl"])


@app.post("/faults")
def faults():
    changes = request.get_json(force=True)
    with _mutex:
        _state.update({k: int(v) for k, v in changes.items() if k in ("latency_ms", "access_token_ttl")})
        return jsonify(_state)


@app.get("/stats")
def stats():
    return jsonify(_state)


# ----------------------------------------------------------------------------- the plugin


class BenchBankConfig(Schema):
    class Meta:
        unknown = EXCLUDE

    url = fields.Url(required=True, require_tld=False)


class BenchBankPlugin(UpstreamPlugin):
    """Refreshes with the stored refresh token at the bench bank (registrations are seeded).

    It speaks HTTP with ``http.client`` on a kept-alive connection per thread: a plugin's own
    overhead is its business, and the benchmark is about the AS's.
    """

    name = "benchbank"
    display_name = "Benchmark bank"
    config_schema = BenchBankConfig

    def __init__(self, config, context) -> None:
        super().__init__(config, context)
        self._local = threading.local()

    def _post(self, path: str, form: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                parts = urlsplit(self.config["url"])
                conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                                  timeout=self.context.http_timeout)
                self._local.conn = conn
            try:
                conn.request("POST", path, body=urlencode(form),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                answer = conn.getresponse()
                return answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def institutions(self):
        return []

    def begin_link(self, person, institution_id, *, state, reconnect=None):
        raise InvalidLinkOptions("The benchmark seeds its registrations.")

    def complete_link(self, person, params, remember, *, reconnect=None):
        raise InvalidLinkOptions("The benchmark seeds its registrations.")

    def access_token(self, registration, scopes):
        try:
            status, body = self._post("/token", {"grant_type": "refresh_token",
                                                 "refresh_token": registration.secrets["refresh_token"]})
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamUnavailable("The benchmark bank is unreachable.") from exc
        if status == 400:
            raise ReauthRequired("The benchmark bank refused the refresh token.")
        if status != 200:
            raise UpstreamUnavailable("The benchmark bank failed.")
        answer = json.loads(body)
        return TokenResult(UpstreamToken(answer["access_token"],
                                         int(time.time()) + answer["expires_in"]))

    def unlink(self, registration):
        return None


def install(site: Path) -> Path:
    """Make ``benchbank`` an installed plugin for interpreters that have ``site`` on their path."""
    dist = site / "aggregator_bench_upstream-0.0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aggregator-bench-upstream\n"
                                   "Version: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[aggregator.plugins]\nbenchbank = bench.upstream:BenchBankPlugin\n")
    return site


def set_faults(url: str, **changes: int) -> dict[str, Any]:
    return requests.post(f"{url}/faults", data=json.dumps(changes), timeout=10).json()


def refreshes(url: str) -> int:
    return int(requests.get(f"{url}/stats", timeout=10).json()["refreshes"])
