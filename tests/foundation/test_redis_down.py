"""Redis goes away, fills its disk or turns replica: every client is told 503, retry shortly.

Each test gives the AS a Redis server of its own and then breaks it for real: stops the process,
makes its RDB save fail (``MISCONF``), or makes it a replica (``READONLY``). Nothing answers 500,
pages stay pages, and the AS recovers by itself once Redis is back.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator

import pytest
import redis
import requests

from aggregator.embedded_redis import EmbeddedRedis
from aggregator.testing.servers import reserve_port
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.fixtures.metrics import METRICS_TOKEN, scrape
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, App, make_app, register

PASSWORD = "correct horse battery staple"


@pytest.fixture
def own_redis(tmp_path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", reserve_port()).start()
    yield server
    server.stop()


@pytest.fixture
def server(make_as, own_redis) -> LiveAS:
    return make_as(REDIS_URL=own_redis.url, AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)


@pytest.fixture
def machine(server) -> App:
    return make_app(server, grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                    scope="accounts:read")


def assert_unavailable(response: requests.Response) -> None:
    """A JSON 503: RFC 6749 ``temporarily_unavailable`` with RFC 9110 ``Retry-After``."""
    assert response.status_code == 503, (response.request.url, response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"] == "temporarily_unavailable"


def assert_unavailable_page(response: requests.Response) -> None:
    """The person's page: a friendly 503, no stack trace, nothing about Redis."""
    assert response.status_code == 503, (response.request.url, response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["Content-Type"].startswith("text/html")
    assert "try again in a moment" in response.text
    assert "redis" not in response.text.lower() and "Traceback" not in response.text


def signup_form(server: LiveAS) -> tuple[PersonAgent, str]:
    """A visitor holding the sign-up page (and its CSRF token) from before the failure."""
    visitor = PersonAgent(server.url)
    return visitor, visitor.csrf("/signup")


def post_signup(visitor: PersonAgent, token: str, username: str) -> requests.Response:
    return visitor.http.post(visitor.url("/signup"), allow_redirects=False,
                             data={"username": username, "password": PASSWORD, "csrf_token": token})


def test_while_redis_is_stopped_every_endpoint_answers_503_and_recovers_after(
        server, own_redis, machine):
    nat = PersonAgent(server.url)
    nat.signup("nat")
    visitor, token = signup_form(server)
    own_redis.stop()

    bearer = {"Authorization": "Bearer some-access-token"}
    assert_unavailable(requests.get(f"{server.url}/jwks", timeout=30))
    assert_unavailable(machine.post("/token", {"grant_type": "client_credentials"}))
    assert_unavailable(machine.post("/introspect", {"token": "some-access-token"}))
    assert_unavailable(machine.post("/par", {"response_type": "code", "scope": "openid"}))
    assert_unavailable(register(server, client_name="Late", grant_types=["client_credentials"],
                                response_types=[], redirect_uris=[]))
    assert_unavailable(requests.get(f"{server.url}/userinfo", headers=bearer, timeout=30))
    assert_unavailable(requests.get(f"{server.url}/grants/x", timeout=30, **machine.auth()))
    assert_unavailable_page(post_signup(visitor, token, "ana"))
    assert_unavailable_page(nat.http.get(nat.url("/")))
    ready = requests.get(f"{server.url}/readyz", timeout=30)
    assert ready.status_code == 503 and int(ready.headers["Retry-After"]) > 0
    assert ready.json() == {"status": "unavailable", "error": "redis unreachable"}
    # what needs no Redis keeps answering: the process is alive, discovery is configuration
    assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
    assert requests.get(f"{server.url}/.well-known/openid-configuration", timeout=30).ok

    own_redis.start()  # same port, same data: the AS reconnects without a restart
    assert requests.get(f"{server.url}/readyz", timeout=30).json() == {"status": "ready"}
    assert requests.get(f"{server.url}/jwks", timeout=30).status_code == 200
    issued = machine.post("/token", {"grant_type": "client_credentials"})
    assert issued.status_code == 200
    introspected = machine.post("/introspect", {"token": issued.json()["access_token"]})
    assert introspected.json()["active"] is True
    assert "Hello, nat" in nat.http.get(nat.url("/")).text
    assert post_signup(visitor, token, "ana").status_code == 302


def break_rdb_saves(client: redis.Redis, tmp_path) -> str:
    """Make the server refuse writes as after a failed snapshot (a full disk, a lost volume):
    point its ``dir`` at a directory that then vanishes, and snapshot. Returns the old ``dir``."""
    old_dir = client.config_get("dir")["dir"]
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    client.config_set("dir", str(doomed))
    shutil.rmtree(doomed)
    client.config_set("save", "3600 1")  # stop-writes-on-bgsave-error applies only with save points
    client.config_set("stop-writes-on-bgsave-error", "yes")
    client.bgsave()
    wait_for_bgsave(client, "err")
    return old_dir


def wait_for_bgsave(client: redis.Redis, status: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        info = client.info("persistence")
        if not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == status:
            return
        assert time.monotonic() < deadline, info
        time.sleep(0.05)


@pytest.fixture
def snapshot_redis(tmp_path) -> Iterator[EmbeddedRedis]:
    """A Redis that persists by RDB snapshots (so a failed one stops writes)."""
    server = EmbeddedRedis(tmp_path / "redis", reserve_port(), appendonly=False).start()
    yield server
    server.stop()


def test_a_redis_that_cannot_persist_is_named_by_readyz_and_writes_answer_503(
        make_as, snapshot_redis, tmp_path):
    server = make_as(REDIS_URL=snapshot_redis.url)
    visitor, token = signup_form(server)
    client = redis.Redis.from_url(snapshot_redis.url)
    old_dir = break_rdb_saves(client, tmp_path)
    try:
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503 and int(ready.headers["Retry-After"]) > 0
        assert ready.json() == {"status": "unavailable", "error":
                                "redis refuses writes (MISCONF: disk full or persistence failing)"}
        assert_unavailable_page(post_signup(visitor, token, "ana"))
        # a new visitor's page needs its CSRF token saved: the failed save is a 503 too
        assert_unavailable_page(requests.get(f"{server.url}/signup", timeout=30))
    finally:  # a server whose snapshots fail also refuses to shut down
        client.config_set("dir", old_dir)
        client.bgsave()
        wait_for_bgsave(client, "ok")
    assert requests.get(f"{server.url}/readyz", timeout=30).json() == {"status": "ready"}
    assert post_signup(visitor, token, "ana").status_code == 302
    client.close()


def test_a_read_only_replica_is_named_by_readyz_and_writes_answer_503(server, own_redis):
    client = redis.Redis.from_url(own_redis.url)
    # a replica of a primary that is not there: read-only at once, its data kept
    client.replicaof("127.0.0.1", reserve_port())
    try:
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "error": "redis is read-only (replica)"}
        assert_unavailable(register(server, client_name="Late", grant_types=["client_credentials"],
                                    response_types=[], redirect_uris=[]))
    finally:
        client.replicaof("NO", "ONE")
        client.close()
    assert requests.get(f"{server.url}/readyz", timeout=30).json() == {"status": "ready"}


def test_a_worker_started_while_redis_is_down_serves_503_then_recovers(make_as, tmp_path):
    """gunicorn's workers build the app with ``wait_for_redis``: one respawned during a Redis
    restart boots, answers 503 meanwhile, and runs its start-up steps once Redis is back."""
    from aggregator import create_app
    from aggregator.testing.servers import serve_wsgi

    own = EmbeddedRedis(tmp_path / "late-redis", reserve_port())
    server = make_as()  # only for its settings: the same kind of AS, on its own Redis below
    settings = dataclasses.replace(server.services.settings, redis_url=own.url)
    app = create_app(settings, wait_for_redis=True)  # Redis is not running yet
    with serve_wsgi(app) as live:
        down = requests.get(f"{live.url}/jwks", timeout=10)
        assert down.status_code == 503 and "Retry-After" in down.headers
        own.start()
        try:
            up = requests.get(f"{live.url}/jwks", timeout=10)
            assert up.status_code == 200 and up.json()["keys"], "signing keys made once it was back"
        finally:
            own.stop()


def test_metrics_count_the_store_faults_by_reason_while_redis_is_down(make_as, own_redis):
    server = make_as(REDIS_URL=own_redis.url, AGGREGATOR_METRICS_TOKEN=METRICS_TOKEN)
    own_redis.stop()

    assert_unavailable(requests.get(f"{server.url}/jwks", timeout=30))
    seen = scrape(server.url)  # answers without Redis

    assert seen.value("aggregator_store_faults_total", reason="unreachable") == 1
    assert seen.value("aggregator_http_requests_total", endpoint="oauth.jwks", status="503") == 1
    assert "aggregator_refresher_queue_jobs" not in seen.families  # read from Redis: left out
