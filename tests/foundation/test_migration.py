"""Grants stored before pairs keep meaning what the person saw, migrated at start-up."""

from __future__ import annotations

import json

import redis
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.store import key_names
from aggregator.store.migrations import SCHEMA, migrate, schema_version

DATA = ("accounts:read", "transactions:read")


def _old_grant(client: redis.Redis, person_id: str, grant_id: str, registrations: list[str]) -> None:
    """A grant as schema 1 stored it: scopes on the grant, a set of registration ids beside it."""
    client.zadd(key_names.PEOPLE, {person_id: 1})
    client.hset(key_names.grant(person_id, grant_id), mapping={
        "id": grant_id, "client_id": "grapher", "person_id": person_id,
        "scopes": "openid offline_access " + " ".join(DATA), "claims": "{}",
        "created_at": 1, "updated_at": 1})
    client.sadd(key_names.legacy_grant_registrations(person_id, grant_id), *registrations)
    client.sadd(key_names.grants(person_id), grant_id)
    client.set(key_names.grant_owner(grant_id), person_id)


def test_an_old_grant_is_read_back_as_pairs_no_wider_than_its_scopes(make_as, redis_url):
    client = redis.Redis.from_url(redis_url)
    _old_grant(client, "p1", "g1", ["astoria", "monami"])
    _old_grant(client, "p2", "g2", ["brill"])

    server = make_as()  # start-up migrates

    grant = server.services.store.grants.get("g1")
    assert grant is not None
    assert grant.pairs == {"astoria": frozenset(DATA), "monami": frozenset(DATA)}
    assert grant.registration_ids == {"astoria", "monami"}
    assert grant.claims == frozenset()  # the old format's {} means none were shown
    assert server.services.store.grants.get("g2").pairs == {"brill": frozenset(DATA)}
    assert not client.exists(key_names.legacy_grant_registrations("p1", "g1"))
    assert schema_version(client) == SCHEMA


def test_the_migration_is_idempotent_and_resumable(redis_url):
    client = redis.Redis.from_url(redis_url)
    _old_grant(client, "p1", "g1", ["astoria"])
    # as if a first run stopped after writing one grant's pairs but before deleting its set
    client.hset(key_names.grant_pairs("p1", "g1"), "astoria", "accounts:read")

    first = migrate(client)
    second = migrate(client)

    assert (first.found, first.now, first.grants) == (1, SCHEMA, 1)
    assert (second.found, second.now, second.grants) == (SCHEMA, SCHEMA, 0)
    # what a finished step wrote is never widened by the repeat
    assert client.hgetall(key_names.grant_pairs("p1", "g1")) == {b"astoria": b"accounts:read"}


def test_operators_can_run_it_from_the_cli(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    env = {"REDIS_URL": redis_url, "AGGREGATOR_DATA_DIR": str(tmp_path), "AGGREGATOR_PLUGINS": "",
           "AGGREGATOR_LOG_LEVEL": "WARNING"}
    _old_grant(client, "p1", "g1", ["astoria"])
    result = CliRunner().invoke(main, ["migrate"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {
        "schema": SCHEMA, "expected": SCHEMA, "grants_rewritten": 0}  # the app's start did it
    assert client.hget(key_names.grant_pairs("p1", "g1"), "astoria") == b"accounts:read transactions:read"
