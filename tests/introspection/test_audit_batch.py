"""Audit entries are written in batches, after the response, and a clean stop loses none.

A burst of introspections that each release a person's upstream tokens, from many threads, to a
gunicorn with two workers; then gunicorn is stopped as an operator stops it (SIGTERM to the
master). Every answer that released tokens left its audit entry in Redis.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from redis.exceptions import RedisClusterException

from aggregator.store import key_names
from aggregator.store.audit_batch import AuditBatch

BURST = 240  # under the person's stream cap (500): every entry stays countable
THREADS = 12


def test_a_clean_stop_after_a_burst_leaves_every_audit_entry_in_redis(deploy, redis_url):
    deployment = deploy(redis_url, workers=2)
    _, token, _ = deployment.grant_with_token()

    def one(_: int) -> bool:
        answer = requests.post(deployment.a.url + "/introspect", data={"token": token},
                               auth=deployment.auth(), timeout=30)
        return answer.status_code == 200 and len(answer.json()["institutions"]) == 2

    with ThreadPoolExecutor(THREADS) as pool:
        released = sum(pool.map(one, range(BURST)))
    assert released == BURST

    deployment.a.process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop
    assert deployment.a.process.wait(timeout=30) == 0

    assert deployment.redis.xlen(key_names.audit_person(deployment.person_id)) == BURST
    assert deployment.redis.xlen(key_names.AUDIT_ALL) == BURST


def test_the_batch_outlives_a_cluster_that_cannot_be_reached():
    """redis-py raises RedisClusterException, not a RedisError, when no cluster node answers:
    the batch keeps its events, in order, and writes them once a node answers again."""
    written: list[int] = []
    refusals = iter(range(2))

    def write(events) -> None:
        if next(refusals, None) is not None:
            raise RedisClusterException("Redis Cluster cannot be connected. Please provide at "
                                        "least one reachable node")
        written.extend(events)

    batch = AuditBatch(write)
    for n in range(5):
        batch.add(n)
    deadline = time.monotonic() + 10
    while len(written) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert written == [0, 1, 2, 3, 4]
    batch.add(5)  # the thread is still there
    deadline = time.monotonic() + 5
    while len(written) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert written[-1] == 5
