"""Event streams over real HTTP: the AS, a receiver on 127.0.0.1, and the delivery worker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from aggregator.events.delivery import DeliveryWorker
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import DATA, App, code_flow, exchange, make_app, seed_registration, signed_up

SET_ALGS = ["RS256"]


@dataclass
class Receiver:
    """An app's push endpoint (RFC 8935): keeps every SET it accepted; answers 500 to the first
    ``fail_first`` requests and waits ``delay`` seconds before answering."""

    url: str = ""
    fail_first: int = 0
    delay: float = 0.0
    requests_seen: int = 0
    accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.accepted) >= count:
                    return list(self.accepted)
            time.sleep(0.02)
        with self.lock:
            return list(self.accepted)


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """Start receivers, each on its own loopback port; stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start() -> Receiver:
        state = Receiver()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        state.url = f"http://127.0.0.1:{server.server_address[1]}/events"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(receivers) -> Receiver:
    return receivers()


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            with state.lock:
                state.requests_seen += 1
                failing = state.requests_seen <= state.fail_first
            if state.delay:
                time.sleep(state.delay)
            if failing or self.headers.get("Content-Type") != "application/secevent+jwt":
                self.send_response(500)
                self.end_headers()
                return
            with state.lock:
                state.accepted.append(body)
            self.send_response(202)  # RFC 8935 §2.2
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def events_app(server: LiveAS, name: str = "Grapher") -> App:
    """An app that may use client credentials with the ``events`` scope."""
    return make_app(server, client_name=name, scope=f"openid offline_access {DATA} events",
                    grant_types=["authorization_code", "refresh_token", "client_credentials"])


def shared_with_app(server: LiveAS, username: str, *banks: str,
                    scope: str = f"openid {DATA}") -> tuple[PersonAgent, App, dict[str, Any]]:
    """A person with these institutions who granted an events-capable app ``scope``: the
    person, the app and its token response."""
    agent = signed_up(server, username)
    for bank in banks or ("Bank of Astoria",):
        seed_registration(server, agent, bank)
    app = events_app(server)
    params, verifier = code_flow(server, app, agent, scope=scope)
    return agent, app, exchange(app, params["code"], verifier).json()


def events_token(app: App) -> str:
    answer = app.post("/token", {"grant_type": "client_credentials", "scope": "events"})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def stream_call(server: LiveAS, token: str, method: str, path: str = "/ssf/stream",
                body: Any = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        kwargs["data"] = json.dumps(body)
    return requests.request(method, f"{server.url}{path}", headers=headers, timeout=15, **kwargs)


def push_stream(server: LiveAS, app: App, url: str) -> tuple[str, dict[str, Any]]:
    """The app's token and its new push stream."""
    token = events_token(app)
    created = stream_call(server, token, "POST", body={
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": url}})
    assert created.status_code == 201, created.text
    return token, created.json()


def verified(server: LiveAS, signed: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A SET checked as a receiver would: the AS's JWKS, ``typ``, issuer (RFC 8417 §2)."""
    keyset = KeySet.import_key_set(requests.get(f"{server.url}/jwks", timeout=10).json())
    token = jwt.decode(signed, keyset, algorithms=SET_ALGS)
    assert token.header["typ"] == "secevent+jwt"
    assert token.claims["iss"] == server.url
    assert "exp" not in token.claims and "sub" not in token.claims
    return token.header, token.claims


@pytest.fixture
def delivery_worker() -> Iterator[Callable[..., DeliveryWorker]]:
    """The delivery worker running in this process (``start`` with its options); stopped after."""
    started: list[DeliveryWorker] = []

    def start(server: LiveAS, **options: Any) -> DeliveryWorker:
        worker = DeliveryWorker(server.services, **options).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(5)
