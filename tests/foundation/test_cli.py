"""The operators' `aggregator` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aggregator.cli import main


@pytest.fixture
def cli(redis_url, tmp_path):
    env = {"REDIS_URL": redis_url, "AGGREGATOR_DATA_DIR": str(tmp_path), "AGGREGATOR_PLUGINS": "",
           "AGGREGATOR_LOG_LEVEL": "WARNING"}

    def run(*args: str, input: str | None = None):
        result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        return result

    return run


def test_users_create_list_delete(cli):
    created = cli("users", "create", "operator-made", input="long enough password\n" * 2)
    assert created.exit_code == 0, created.output
    person = json.loads(created.output.strip().splitlines()[-1])
    assert person["username"] == "operator-made"
    listed = json.loads(cli("users", "list").output)
    assert [p["username"] for p in listed] == ["operator-made"]
    deleted = cli("users", "delete", "operator-made", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(cli("users", "list").output) == []


def test_users_create_applies_the_signup_rules(cli):
    result = cli("users", "create", "x", input="short\nshort\n")
    assert result.exit_code != 0
    assert "username" in result.output and "password" in result.output


def test_keys_rotate_and_list(cli):
    before = json.loads(cli("keys", "list").output)
    rotated = json.loads(cli("keys", "rotate").output)
    after = json.loads(cli("keys", "list").output)
    assert len(after) == len(before) + len(rotated["new_signing_keys"])
    assert all(k["retired_at"] for k in after if k["kid"] in {b["kid"] for b in before})


def test_new_encryption_key_is_a_ring_item(cli):
    from aggregator.crypto import KeyRing

    item = cli("keys", "new-encryption-key").output.strip()
    assert KeyRing.parse(item).primary == item.split(":")[0]


def test_rotate_encryption_keeps_old_keys(cli, tmp_path):
    cli("users", "list")  # creates the development ring
    result = json.loads(cli("keys", "rotate-encryption").output)
    assert len(result["keys"]) == 2
