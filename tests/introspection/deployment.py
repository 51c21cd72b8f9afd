"""Several AS processes under gunicorn on one Redis, as the workers of one deployment, with an
app and a person: ``deploy(redis_url)`` starts them (the ``deploy`` fixture in conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from aggregator.crypto import KeyRing, new_token
from aggregator.oauth.clients import register_client
from aggregator.testing.servers import reserve_port
from aggregator.upstream.contract import Institution, LinkedInstitution, UpstreamToken
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.foundation.running import Runner, start_gunicorn
from tests.oauth.apps import DATA, INITIAL_ACCESS_TOKEN


@dataclass
class Deployment:
    """The test's own AS (it seeds records) and two gunicorn-served AS processes, A and B."""

    home: LiveAS
    a: Runner
    b: Runner
    redis: redis.Redis
    client_id: str
    secret: str
    registration_token: str
    person_id: str
    person: PersonAgent  # logged in at A

    def auth(self, secret: str | None = None) -> tuple[str, str]:
        return self.client_id, secret or self.secret

    def grant_with_token(self, banks: int = 2) -> tuple[str, str, list[str]]:
        """A grant of ``banks`` fresh registrations to the app, and an access token under it."""
        store = self.home.services.store
        ids = []
        for n in range(banks):
            record = store.registrations.save_linked(self.person_id, "sandbox", LinkedInstitution(
                Institution(f"bank-{new_token()[:8]}", f"Bank {n} {new_token()[:6]}"),
                external_id=new_token()[:12], endpoint=f"https://bank.example/{n}", secrets={},
                token=UpstreamToken(f"upstream-{n}-{new_token()[:8]}", int(time.time()) + 3600)))
            ids.append(record.id)
        grant = store.grants.create(self.client_id, self.person_id, ["openid", *DATA.split()],
                                    {rid: frozenset(DATA.split()) for rid in ids})
        store.clients.remember_grant(self.client_id, self.person_id, grant.id)
        token, _ = store.tokens.issue_access_token(
            client_id=self.client_id, person_id=self.person_id, grant_id=grant.id, scope=grant.scope,
            ttl=600, pairs=grant.pairs)
        return grant.id, token, ids

    def hgetall_calls(self) -> int:
        return int(self.redis.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))


def introspect(server: Runner, token: str, auth: tuple[str, str]) -> dict:
    response = requests.post(server.url + "/introspect", data={"token": token}, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def warm(deployment: Deployment, token: str, *servers: Runner) -> None:
    """Introspect on each server until it answers without reading a hash from Redis: its
    cache is live and holds the client, the token, the grant and the registrations."""
    for server in servers:
        deadline = time.monotonic() + 10
        while True:
            assert introspect(server, token, deployment.auth())["active"] is True
            before = deployment.hgetall_calls()
            assert introspect(server, token, deployment.auth())["active"] is True
            if deployment.hgetall_calls() == before:
                break
            assert time.monotonic() < deadline, f"{server.url} never served from memory"
            time.sleep(0.05)


def as_env(redis_url: str, data_dir: Path, common: dict[str, str]) -> dict[str, str]:
    port = reserve_port()
    return {**os.environ, **common, "REDIS_URL": redis_url, "AGGREGATOR_PORT": str(port),
            "AGGREGATOR_ISSUER": f"http://127.0.0.1:{port}", "AGGREGATOR_DATA_DIR": str(data_dir)}


@pytest.fixture
def deploy(make_as, tmp_path) -> Iterator[Callable[[str], Deployment]]:
    """``deploy(redis_url, workers=1)``: the test's own AS and two gunicorn-served ones (A, B) on
    that Redis, an app and a person."""
    with ExitStack() as stack:

        def start(redis_url: str, workers: int = 1) -> Deployment:
            common = {"AGGREGATOR_ENCRYPTION_KEYS": KeyRing.new_key_item(),
                      "AGGREGATOR_PLUGINS": "sandbox",
                      "AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
                      "AGGREGATOR_PASSWORD_HASHING": "argon2id-minimal",
                      "AGGREGATOR_LOG_LEVEL": "WARNING"}
            home = make_as(REDIS_URL=redis_url, **common)
            runners = []
            for name in ("a", "b"):
                runner = start_gunicorn(as_env(redis_url, tmp_path / name, common),
                                        tmp_path / f"{name}.log", workers=workers)
                stack.callback(runner.stop)
                runners.append(runner)
            for runner in runners:
                runner.wait_ready()
            issued = register_client(home.services, {
                "client_name": "Grapher", "redirect_uris": ["https://grapher.example/cb"],
                "grant_types": ["authorization_code"], "scope": f"openid {DATA}"})
            person = PersonAgent(runners[0].url)
            person.signup("nat")
            found = home.services.store.people.find_by_username("nat")
            assert found is not None
            client = redis.Redis.from_url(redis_url)
            stack.callback(client.close)
            return Deployment(home, runners[0], runners[1], client, issued.client.client_id,
                              issued.client_secret or "", issued.registration_access_token, found.id,
                              person)

        yield start


@pytest.fixture
def deployment(deploy, redis_url) -> Deployment:
    return deploy(redis_url)
