"""The refresher owns bank calls: they outlive a response's deadline and a Redis outage, and a
rotated refresh token is never dropped.

Each test runs a real refresher (its own app over the same Redis, with the longer refresh
timeout, as ``python -m aggregator.introspection.refresher`` builds it) in a thread.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from aggregator import create_app
from aggregator.embedded_redis import EmbeddedRedis
from aggregator.introspection.refresher import Refresher
from aggregator.introspection.write_ahead import WriteAhead
from aggregator.services import EXTENSION
from aggregator.testing.servers import reserve_port
from aggregator.upstream.contract import DATA_SCOPES, UpstreamToken
from tests.introspection.crowd import at_once
from tests.introspection.test_freshness import accounts, collect
from tests.introspection.upstream import PLUGINS, link

SCOPES = frozenset(DATA_SCOPES)


def start_refresher(server, *, timeout: float = 10.0) -> Refresher:
    settings = dataclasses.replace(server.services.settings, upstream_timeout=timeout)
    app = create_app(settings, plugins=PLUGINS)
    return Refresher(app.extensions[EXTENSION], name="test-refresher").start()


@pytest.fixture
def refresher(server) -> Iterator[Refresher]:
    running = start_refresher(server)
    deadline = time.monotonic() + 5
    while not server.services.store.refresh_jobs.refresher_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield running
    running.stop()


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not within the time allowed")


def test_a_bank_slower_than_the_response_deadline_is_still_refreshed(server, person, banks, refresher):
    bank = banks(latency_ms=2000, rotate_refresh_tokens=True)
    record = link(server.services, person.id, bank)

    first = collect(server, person.id, [record])[record.id]  # the response gives up after 1 s
    assert first.status == "error" and "still being refreshed" in first.error

    # the refresher carries on with its own timeout, stores the rotation, and the next look is ok
    later = wait_for(lambda: (o := collect(server, person.id, [record])[record.id]).token and o)
    assert later.status == "ok" and accounts(record, later).status_code == 200
    assert bank.refreshes == 1
    stored = server.services.store.registrations.secrets(record)["refresh_token"]
    assert stored in bank.refresh_tokens, "the rotated refresh token was kept"


def test_fifty_waiters_cause_one_refresh_through_the_refresher(server, person, banks, refresher):
    bank = banks(latency_ms=100)
    record = link(server.services, person.id, bank)
    outcomes = at_once(50, lambda: collect(server, person.id, [record])[record.id])
    assert {o.status for o in outcomes} == {"ok"}
    assert bank.refreshes == 1


def test_a_token_in_use_is_renewed_before_anyone_waits(server, person, banks, refresher):
    bank = banks(access_token_ttl=80)  # fresh for 20 s after the 60 s window: inside renewal
    record = link(server.services, person.id, bank)
    first = collect(server, person.id, [record])[record.id]
    assert first.status == "ok" and bank.refreshes == 1

    again = collect(server, person.id, [record])[record.id]  # answered at once from the cache
    assert again.token == first.token
    wait_for(lambda: bank.refreshes == 2)  # ...and the refresher renewed it meanwhile
    renewed = wait_for(lambda: (o := collect(server, person.id, [record])[record.id]).token
                       != first.token and o)
    assert accounts(record, renewed).status_code == 200


def test_redis_killed_during_the_bank_call_loses_no_rotated_token(make_as, banks, tmp_path):
    own = EmbeddedRedis(tmp_path / "own-redis", reserve_port()).start()
    try:
        redis.Redis.from_url(own.url).config_set("appendfsync", "always")
        server = make_as(REDIS_URL=own.url, AGGREGATOR_UPSTREAM_TIMEOUT="1", plugins=PLUGINS)
        owner = server.services.store.people.create("kim", "not-a-real-hash")
        running = start_refresher(server)
        wait_for(server.services.store.refresh_jobs.refresher_alive)
        bank = banks(latency_ms=2000, rotate_refresh_tokens=True)
        record = link(server.services, owner.id, bank)
        issued = next(iter(bank.refresh_tokens))

        server.services.store.refresh_jobs.request(owner.id, record.id, SCOPES, 60, 120_000)
        wait_for(lambda: bank.refreshes == 1)  # the bank call is under way
        own.process.send_signal(signal.SIGKILL)  # Redis dies mid-call
        own.process.wait(5)
        time.sleep(2.0)  # the bank answers (and spends the old token) while Redis is down
        assert issued not in bank.refresh_tokens
        own.start()  # same port, same append-only file

        outcome = wait_for(lambda: (o := collect(server, owner.id, [record])[record.id]).token and o)
        assert outcome.status == "ok" and bank.refreshes == 1
        assert accounts(record, outcome).status_code == 200
        stored = server.services.store.registrations.secrets(record)["refresh_token"]
        assert stored in bank.refresh_tokens, "the rotated refresh token survived the outage"
        # and the queue is not left blocked: the job was acknowledged, its marker is gone
        jobs = server.services.store.refresh_jobs
        wait_for(lambda: jobs.status() == {"queued": 0, "pending": 0, "refresher_alive": True})
        assert jobs.request(owner.id, record.id, SCOPES, 60, 120_000)
        running.stop()
    finally:
        own.stop()


def test_past_the_retry_deadline_the_result_waits_on_disk_encrypted(make_as, tmp_path, banks):
    own = EmbeddedRedis(tmp_path / "own-redis", reserve_port()).start()
    try:
        server = make_as(REDIS_URL=own.url, plugins=PLUGINS)
        owner = server.services.store.people.create("kim", "not-a-real-hash")
        record = link(server.services, owner.id, banks())
        fresh = server.services.fresh_tokens
        fresh.persist_deadline = 0.3
        result = dataclasses.make_dataclass("Result", ["token", "secrets", "metadata"])(
            UpstreamToken("at-after-outage", int(time.time()) + 600),
            {"refresh_token": "rt-rotated-while-down"}, None)
        own.stop()

        fresh._persist(record, SCOPES, result)  # noqa: SLF001 - the persistence step itself

        [kept] = WriteAhead(server.services.settings.data_dir, server.services.keyring).pending()
        assert b"rt-rotated-while-down" not in kept.read_bytes(), "encrypted at rest"
        own.start()
        # any process start (or a refresher's loop) writes it to Redis
        assert fresh.write_ahead.replay(server.services.store.registrations) == 1
        assert server.services.store.registrations.secrets(record) == {
            "refresh_token": "rt-rotated-while-down"}
        cached = server.services.store.registrations.cached_token(owner.id, record.id, SCOPES)
        assert cached is not None and cached.access_token == "at-after-outage"
    finally:
        own.stop()


def test_operators_see_the_queue(server, person, banks):
    record = link(server.services, person.id, banks())
    jobs = server.services.store.refresh_jobs
    assert jobs.request(person.id, record.id, SCOPES, 60, 120_000)
    assert not jobs.request(person.id, record.id, SCOPES, 60, 120_000), "queued once"
    assert jobs.status() == {"queued": 1, "pending": 0, "refresher_alive": False}


def test_the_cli_shows_the_queue(server, person, banks):
    from click.testing import CliRunner

    from aggregator.cli import main

    record = link(server.services, person.id, banks())
    server.services.store.refresh_jobs.request(person.id, record.id, SCOPES, 60, 120_000)
    settings = server.services.settings
    result = CliRunner().invoke(main, ["refresher", "status"], catch_exceptions=False, env={
        "REDIS_URL": settings.redis_url, "AGGREGATOR_DATA_DIR": str(settings.data_dir),
        "AGGREGATOR_PLUGINS": "", "AGGREGATOR_LOG_LEVEL": "WARNING"})
    assert result.exit_code == 0, result.output
    assert '"queued": 1' in result.output and '"refresher_alive": false' in result.output

