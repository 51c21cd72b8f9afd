"""A tiny external upstream for the introspection tests: a bank's token endpoint and account API
on a real loopback HTTP server, with faults (latency, failures, rotation, short-lived tokens)
and counters, plus the plugin that talks to it over HTTP like any real plugin.

Registrations are seeded straight into the AS's repositories (the link flow is the registry's
business, tested elsewhere); the plugin only ever refreshes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, jsonify, request
from marshmallow import Schema

from aggregator.services import Services
from aggregator.store.registrations import RegistrationRecord
from aggregator.testing.servers import serve_wsgi
from aggregator.upstream.contract import (
    Institution,
    InvalidLinkOptions,
    LinkedInstitution,
    ReauthRequired,
    TokenResult,
    UpstreamPlugin,
    UpstreamToken,
    UpstreamUnavailable,
)


@dataclass
class Faults:
    latency_ms: int = 0
    fail: bool = False
    rotate_refresh_tokens: bool = False
    access_token_ttl: int = 3600
    #: "DPoP": the bank binds its tokens to the plugin's key (as if the plugin sent DPoP proofs)
    token_type: str = "Bearer"


@dataclass
class FakeBank:
    """State of one fake bank; ``url`` is set once it serves."""

    name: str = "Bank of Astoria"
    url: str = ""
    faults: Faults = field(default_factory=Faults)
    refreshes: int = 0
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user id
    access_tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # token -> user, exp
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_account(self) -> tuple[str, str]:
        """A new customer and the refresh token their link produced."""
        user_id, refresh_token = secrets.token_hex(4), secrets.token_urlsafe(16)
        with self.lock:
            self.refresh_tokens[refresh_token] = user_id
        return user_id, refresh_token

    def revoke_all(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def app(self) -> Flask:
        app = Flask(f"fakebank-{id(self)}")

        @app.post("/token")
        def token():
            with self.lock:
                self.refreshes += 1
            if self.faults.latency_ms:
                time.sleep(self.faults.latency_ms / 1000)
            if self.faults.fail:
                return jsonify(error="temporarily_unavailable"), 503
            presented = request.form.get("refresh_token", "")
            with self.lock:
                user_id = self.refresh_tokens.get(presented)
                if user_id is None or request.form.get("grant_type") != "refresh_token":
                    return jsonify(error="invalid_grant"), 400
                answer: dict[str, Any] = {"token_type": self.faults.token_type,
                                          "expires_in": self.faults.access_token_ttl}
                if self.faults.rotate_refresh_tokens:
                    del self.refresh_tokens[presented]
                    answer["refresh_token"] = secrets.token_urlsafe(16)
                    self.refresh_tokens[answer["refresh_token"]] = user_id
                answer["access_token"] = secrets.token_urlsafe(16)
                self.access_tokens[answer["access_token"]] = (
                    user_id, int(time.time()) + self.faults.access_token_ttl)
            return jsonify(answer)

        @app.get("/users/<user_id>/accounts")
        def accounts(user_id: str):
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
            with self.lock:
                owner = self.access_tokens.get(presented)
            if owner is None or owner[0] != user_id or owner[1] < time.time():
                return jsonify(error="invalid_token"), 401
            return jsonify(accounts=[{"id": f"{user_id}-current", "name": "Current account"}])

        return app


@contextmanager
def running(bank: FakeBank) -> Iterator[FakeBank]:
    with serve_wsgi(bank.app()) as server:
        bank.url = server.url
        yield bank


class FakeBankPlugin(UpstreamPlugin):
    """Refreshes registrations at whichever fake bank their metadata names."""

    name = "fakebank"
    display_name = "Fake bank"
    config_schema = Schema

    def __init__(self, config, context) -> None:
        super().__init__(config, context)
        self.http = requests.Session()
        self.http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))

    def institutions(self):
        return []

    def begin_link(self, person, institution_id, *, state, reconnect=None):
        raise InvalidLinkOptions("Registrations of the fake bank are seeded by the tests.")

    def complete_link(self, person, params, remember, *, reconnect=None):
        raise InvalidLinkOptions("Registrations of the fake bank are seeded by the tests.")

    def access_token(self, registration, scopes):
        try:
            answer = self.http.post(
                registration.metadata["token_url"],
                data={"grant_type": "refresh_token",
                      "refresh_token": registration.secrets["refresh_token"]},
                timeout=self.context.http_timeout,
            )
        except requests.RequestException as exc:
            raise UpstreamUnavailable(f"{registration.institution.name} is unreachable.") from exc
        if answer.status_code >= 500:
            raise UpstreamUnavailable(f"{registration.institution.name} is temporarily unavailable.")
        body = answer.json()
        if answer.status_code == 400 and body.get("error") == "invalid_grant":
            raise ReauthRequired(f"{registration.institution.name} no longer accepts this connection.")
        token = UpstreamToken(body["access_token"], int(time.time()) + int(body["expires_in"]),
                              body.get("token_type", "Bearer"))
        rotated = body.get("refresh_token")
        return TokenResult(token, secrets={"refresh_token": rotated} if rotated else None)

    def unlink(self, registration):
        return None


#: ``make_as(plugins=PLUGINS)``: the AS with the fake-bank plugin enabled
PLUGINS = {"fakebank": lambda context: FakeBankPlugin({}, context)}


def link(svc: Services, person_id: str, bank: FakeBank, *, name: str | None = None,
         share_group: str | None = None) -> RegistrationRecord:
    """Seed a registration of ``bank`` for the person, as a completed link would store it."""
    user_id, refresh_token = bank.open_account()
    return svc.store.registrations.save_linked(person_id, "fakebank", LinkedInstitution(
        Institution(bank.name.lower().replace(" ", "-"), name or bank.name),
        external_id=f"{bank.url}/{user_id}",
        endpoint=f"{bank.url}/users/{user_id}",
        secrets={"refresh_token": refresh_token},
        metadata={"token_url": f"{bank.url}/token"},
        share_group=share_group,
    ))
