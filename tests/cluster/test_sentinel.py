"""The AS behind Sentinel (one primary, one replica, one sentinel): the short story, then the
primary dies (kill -9) and the AS follows the promoted replica without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
import requests

from tests.cluster.conftest import bank_env
from tests.cluster.local_cluster import LocalSentinel
from tests.cluster.test_cluster_story import grapher_token
from tests.fixtures.aggregator import LiveAS
from tests.introspection.test_story import accounts, introspect, nat_with_two_banks
from tests.oauth.apps import make_app


@pytest.fixture(scope="module")
def sentinel_pair(tmp_path_factory) -> Iterator[LocalSentinel]:
    pair = LocalSentinel(tmp_path_factory.mktemp("sentinel")).start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def redis_url(sentinel_pair) -> str:
    """Only the URL's password, database and TLS count: the Sentinel names the primary."""
    with redis.Redis(port=sentinel_pair.primary.port) as client:
        client.flushall()
    return f"redis://127.0.0.1:{sentinel_pair.primary.port}/0"


@pytest.fixture
def server(make_as, sandbox_bank, sentinel_pair) -> LiveAS:
    return make_as(REDIS_SENTINELS=sentinel_pair.sentinels,
                   REDIS_SENTINEL_MASTER=LocalSentinel.MASTER_NAME, **bank_env(sandbox_bank))


def test_the_story_behind_sentinel_and_a_primary_failover(server, sandbox_bank, sentinel_pair):
    nat = nat_with_two_banks(server, sandbox_bank, rotate_refresh_tokens=True, access_token_ttl=30)
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
    assert {e["status"] for e in body["institutions"].values()} == {"ok"}
    assert all(accounts(e).status_code == 200 for e in body["institutions"].values())

    sentinel_pair.primary.process.kill()  # kill -9
    sentinel_pair.primary.process.wait(timeout=10)
    killed_at, codes, recovered = time.monotonic(), [], None
    while time.monotonic() - killed_at < 30:
        try:
            answer = grapher.post("/introspect", {"token": tokens["access_token"]})
            codes.append(answer.status_code)
        except requests.RequestException:
            codes.append(0)
            continue
        if answer.status_code == 200 and {
                e["status"] for e in answer.json()["institutions"].values()} == {"ok"}:
            recovered = time.monotonic() - killed_at
            break
        time.sleep(0.1)
    print("sentinel failover:", {"seconds_to_recovery": recovered, "failed": len(codes) - 1,
                                 "failed_statuses": sorted(set(codes[:-1]))})
    assert recovered is not None, codes
    assert set(codes[:-1]) <= {503}, codes
    # the rotations stored before the kill are on the promoted replica
    renewed = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
    assert {e["status"] for e in renewed["institutions"].values()} == {"ok"}
