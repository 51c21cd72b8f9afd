"""Each worker keeps the records of introspection in memory, and still no change is ever missed.

Two AS processes under gunicorn (``wsgi:app``, one worker each) share one Redis, as the workers
of one deployment do. Both are warmed (their caches hold the client, the token, the grant and the
registrations), then one of them takes a change through its own endpoints (a revocation, a grant
ended, a registration removed, a consent narrowed, a client's credentials changed) and the very
next introspection on the *other* one must see it. Each story runs many times, to shake out races.
The cache's own connections are then killed, and Redis restarted: nothing stale is served.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
import requests

from aggregator.crypto import KeyRing, new_token, token_hash
from aggregator.embedded_redis import EmbeddedRedis
from aggregator.oauth.clients import register_client
from aggregator.testing.servers import reserve_port
from aggregator.upstream.contract import Institution, LinkedInstitution, UpstreamToken
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.foundation.running import Runner, start_gunicorn
from tests.oauth.apps import DATA, INITIAL_ACCESS_TOKEN

ROUNDS = 8  # each story, again and again


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
    """``deploy(redis_url)``: the three AS processes on that Redis, an app and a person."""
    with ExitStack() as stack:

        def start(redis_url: str) -> Deployment:
            common = {"AGGREGATOR_ENCRYPTION_KEYS": KeyRing.new_key_item(),
                      "AGGREGATOR_PLUGINS": "sandbox",
                      "AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
                      "AGGREGATOR_PASSWORD_HASHING": "argon2id-minimal",
                      "AGGREGATOR_LOG_LEVEL": "WARNING"}
            home = make_as(REDIS_URL=redis_url, **common)
            runners = []
            for name in ("a", "b"):
                runner = start_gunicorn(as_env(redis_url, tmp_path / name, common),
                                        tmp_path / f"{name}.log")
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


def test_a_revocation_at_one_worker_is_seen_by_the_next_introspection_at_the_other(deployment):
    for _ in range(ROUNDS):
        _, token, _ = deployment.grant_with_token()
        warm(deployment, token, deployment.a, deployment.b)
        revoked = requests.post(deployment.a.url + "/revoke", data={"token": token},
                                auth=deployment.auth(), timeout=10)
        assert revoked.status_code == 200
        assert introspect(deployment.b, token, deployment.auth()) == {"active": False}


def test_an_app_ending_its_grant_is_seen_at_once_by_the_other_worker(deployment):
    for _ in range(ROUNDS):
        grant_id, token, _ = deployment.grant_with_token()
        warm(deployment, token, deployment.a, deployment.b)
        ended = requests.delete(f"{deployment.a.url}/grants/{grant_id}", auth=deployment.auth(),
                                timeout=10)
        assert ended.status_code == 204, ended.text
        assert introspect(deployment.b, token, deployment.auth()) == {"active": False}


def test_a_person_removing_a_registration_is_seen_at_once_by_the_other_worker(deployment):
    for _ in range(ROUNDS):
        _, token, (kept, removed) = deployment.grant_with_token()
        warm(deployment, token, deployment.a, deployment.b)
        answer = deployment.person.post_form("/connections/remove", {"registration": removed},
                                             form_page="/connections")
        assert answer.status_code == 303, answer.text
        found = introspect(deployment.b, token, deployment.auth())["institutions"]
        assert [entry["registration_id"] for entry in found.values()] == [kept]


def test_a_person_narrowing_a_consent_is_seen_at_once_by_the_other_worker(deployment):
    for _ in range(ROUNDS):
        grant_id, token, (first, second) = deployment.grant_with_token()
        warm(deployment, token, deployment.a, deployment.b)
        keep = [f"{first} {scope}" for scope in DATA.split()] + [f"{second} accounts:read"]
        answer = deployment.person.post_form(f"/apps/{grant_id}/edit", {"keep": keep}, form_page="/")
        assert answer.status_code == 303, answer.text
        body = introspect(deployment.b, token, deployment.auth())
        actions = {d["registration_id"]: d["actions"] for d in body["authorization_details"]}
        assert actions == {first: sorted(DATA.split()), second: ["accounts:read"]}


def test_changed_client_credentials_are_checked_at_once_by_the_other_worker(deployment):
    _, token, _ = deployment.grant_with_token()
    for _ in range(ROUNDS):
        # the operator's tooling gives the app a new secret (another process writes the record)
        warm(deployment, token, deployment.a, deployment.b)
        clients = deployment.home.services.store.clients
        old, new = deployment.secret, new_token()
        clients.save(replace(clients.get(deployment.client_id), client_secret_hash=token_hash(new)))
        refused = requests.post(deployment.b.url + "/introspect", data={"token": token},
                                auth=deployment.auth(old), timeout=10)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        deployment.secret = new
        assert introspect(deployment.b, token, deployment.auth())["active"] is True

    # RFC 7592 §2.2 at A: the app moves to client_secret_post; Basic is refused at B at once
    bearer = {"Authorization": f"Bearer {deployment.registration_token}"}
    current = requests.get(f"{deployment.a.url}/register/{deployment.client_id}", headers=bearer,
                           timeout=10).json()
    bearer = {"Authorization": f"Bearer {current['registration_access_token']}"}
    document = {k: v for k, v in current.items() if k not in (
        "registration_access_token", "registration_client_uri", "client_secret_expires_at",
        "client_id_issued_at", "client_secret")}
    updated = requests.put(f"{deployment.a.url}/register/{deployment.client_id}", headers=bearer,
                           json={**document, "token_endpoint_auth_method": "client_secret_post"},
                           timeout=10)
    assert updated.status_code == 200, updated.text
    basic = requests.post(deployment.b.url + "/introspect", data={"token": token},
                          auth=deployment.auth(), timeout=10)
    assert basic.status_code == 401
    posted = requests.post(deployment.b.url + "/introspect", timeout=10, data={
        "token": token, "client_id": deployment.client_id, "client_secret": deployment.secret})
    assert posted.json()["active"] is True


def listeners(client: redis.Redis) -> list[dict]:
    """The connections subscribed to Redis's invalidation channel (one per live cache)."""
    return [c for c in client.client_list() if c["sub"] == "1"]


def tracking(client: redis.Redis) -> list[dict]:
    """The connections with CLIENT TRACKING on (flag ``t``)."""
    return [c for c in client.client_list() if "t" in c["flags"]]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize("connections", [listeners, tracking], ids=["listener", "tracking"])
def test_a_cache_losing_a_connection_serves_from_redis_until_it_is_back(deployment, connections):
    for _ in range(3):
        _, token, _ = deployment.grant_with_token()
        warm(deployment, token, deployment.a, deployment.b)
        live = len(connections(deployment.redis))  # A's, B's and the test's own AS's, if started
        assert live >= 2
        for connection in connections(deployment.redis):
            deployment.redis.client_kill_filter(_id=connection["id"])
        # nobody tells B about this change: B must read Redis now (emptied, bypassed)
        deployment.redis.delete(*[key.decode() for key in deployment.redis.keys("at:*")])
        assert introspect(deployment.b, token, deployment.auth()) == {"active": False}
        # and it is back to memory (and to invalidations) by itself
        wait_for(lambda live=live: len(connections(deployment.redis)) == live,
                 "the caches should reconnect")
        _, token, _ = deployment.grant_with_token()
        warm(deployment, token, deployment.b)
        requests.post(deployment.a.url + "/revoke", data={"token": token}, auth=deployment.auth(),
                      timeout=10).raise_for_status()
        assert introspect(deployment.b, token, deployment.auth()) == {"active": False}


def test_a_redis_restart_leaves_no_stale_record(deploy, tmp_path):
    own = EmbeddedRedis(tmp_path / "redis", reserve_port()).start()
    try:
        deployment = deploy(own.url)
        _, token, _ = deployment.grant_with_token()
        warm(deployment, token, deployment.a, deployment.b)
        own.stop()
        own.start()
        # changed before any cache could reconnect: none may answer from what it held
        client = redis.Redis.from_url(own.url)
        client.delete(*[key.decode() for key in client.keys("at:*")])
        client.close()
        for server in (deployment.a, deployment.b):
            deadline = time.monotonic() + 15
            while True:  # 503 while the workers' pools reconnect
                answer = requests.post(server.url + "/introspect", data={"token": token},
                                       auth=deployment.auth(), timeout=10)
                if answer.status_code != 503:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert answer.status_code == 200 and answer.json() == {"active": False}
    finally:
        own.stop()


def test_without_the_cache_every_read_goes_to_redis(make_as, redis_url):
    server = make_as(AGGREGATOR_LOCAL_CACHE="off")
    assert server.services.store.cache is None
    store = server.services.store
    issued = register_client(server.services, {"client_name": "Plain", "grant_types": ["client_credentials"],
                                               "scope": DATA})
    basic = "Basic " + base64.b64encode(
        f"{issued.client.client_id}:{issued.client_secret}".encode()).decode()
    token, _ = store.tokens.issue_access_token(client_id=issued.client.client_id, person_id=None,
                                               grant_id=None, scope=DATA, ttl=600)
    for _ in range(3):
        answer = requests.post(server.url + "/introspect", data={"token": token},
                               headers={"Authorization": basic}, timeout=10)
        assert answer.json()["active"] is True
    assert listeners(redis.Redis.from_url(redis_url)) == []
