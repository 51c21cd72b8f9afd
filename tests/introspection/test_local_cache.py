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
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
import redis
import requests

from aggregator.crypto import new_token, token_hash
from aggregator.embedded_redis import EmbeddedRedis
from aggregator.oauth.clients import register_client
from aggregator.store.local_cache import LocalCache, dedicated_connection
from aggregator.testing.servers import reserve_port
from tests.introspection.deployment import introspect, warm
from tests.oauth.apps import DATA

ROUNDS = 8  # each story, again and again


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
        assert len(connections(deployment.redis)) >= 2  # A's and B's (and maybe the test's AS's)
        for connection in connections(deployment.redis):
            deployment.redis.client_kill_filter(_id=connection["id"])
        # nobody tells B about this change: B must read Redis now (emptied, bypassed)
        deployment.redis.delete(*[key.decode() for key in deployment.redis.keys("at:*")])
        assert introspect(deployment.b, token, deployment.auth()) == {"active": False}
        # and it is back to memory (warm waits for that) and to invalidations by itself
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


def live_cache(redis_url: str, size: int = 50_000) -> tuple[LocalCache, redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    cache = LocalCache(dedicated_connection(client), ("at:",), size=size)
    cache.read("at:warm", lambda: None)  # starts it
    wait_for(lambda: cache.active, "the cache should connect")
    return cache, client


def test_a_value_read_while_it_changed_is_not_kept(redis_url):
    cache, client = live_cache(redis_url)
    try:
        client.set("at:x", "old")

        def load_then_change() -> bytes | None:
            value = client.get("at:x")
            client.set("at:x", "new")  # the change lands while this read is in flight ...
            cache.drain()  # ... and another request applies its invalidation meanwhile
            return value

        assert cache.read("at:x", load_then_change) == b"old"
        assert cache.read("at:x", lambda: client.get("at:x")) == b"new"
    finally:
        cache.stop()
        client.close()


def test_the_cache_keeps_at_most_its_size_least_recently_used_first_out(redis_url):
    cache, client = live_cache(redis_url, size=3)
    try:
        for name in ("a", "b", "c"):
            cache.read(f"at:{name}", lambda name=name: name)
        cache.read("at:a", lambda: "reloaded")  # a is now the most recently used
        cache.read("at:d", lambda: "d")
        assert len(cache) == 3
        assert cache.read("at:a", lambda: "reloaded") == "a"
        assert cache.read("at:b", lambda: "reloaded") == "reloaded"  # b went first
    finally:
        cache.stop()
        client.close()


def test_a_redis_refusing_client_tracking_leaves_the_cache_off_and_serves_from_redis(
        make_as, redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("no-tracking", enabled=True, passwords=["+a-long-password"], keys=["*"],
                      channels=["*"], commands=["+@all", "-client"])
    try:
        limited = redis_url.replace("redis://", "redis://no-tracking:a-long-password@")
        server = make_as(REDIS_URL=limited)
        issued = register_client(server.services, {
            "client_name": "Plain", "grant_types": ["client_credentials"], "scope": DATA})
        auth = (issued.client.client_id, issued.client_secret or "")
        token, record = server.services.store.tokens.issue_access_token(
            client_id=issued.client.client_id, person_id=None, grant_id=None, scope=DATA, ttl=600)
        assert requests.post(server.url + "/introspect", data={"token": token}, auth=auth,
                             timeout=10).json()["active"] is True
        time.sleep(0.5)  # the cache tried (and was refused: CLIENT is not this user's)
        server.services.store.tokens.revoke_access_token(record)
        assert requests.post(server.url + "/introspect", data={"token": token}, auth=auth,
                             timeout=10).json() == {"active": False}
        assert server.services.store.cache is not None and not server.services.store.cache.active
        assert not [c for c in admin.client_list() if c["user"] == "no-tracking" and c["sub"] == "1"]
    finally:
        admin.acl_deluser("no-tracking")
        admin.close()
