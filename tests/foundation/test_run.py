"""`make run`'s runner: embedded Redis + the AS as one process group, data kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.aggregator import PersonAgent
from tests.foundation.running import port_closed, start_runner


def test_run_serves_restarts_and_keeps_people(run_env, tmp_path):
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        elapsed = runner.wait_ready()
        assert elapsed < 60
        assert "appendfsync everysec" in runner.output(), "the default durability"
        PersonAgent(runner.url).signup("persistent", "survives restarts 123")
    finally:
        runner.stop()
    assert runner.process.returncode == 0
    for port in (int(run_env["AGGREGATOR_PORT"]), int(run_env["AGGREGATOR_REDIS_PORT"])):
        assert port_closed(port), f"something still listens on {port} after Ctrl-C"
    assert (Path(run_env["AGGREGATOR_DATA_DIR"]) / "redis").is_dir()

    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        runner.wait_ready()
        response = PersonAgent(runner.url).login("persistent", "survives restarts 123")
        assert response.status_code == 302, "a person created before the restart can log in"
    finally:
        runner.stop()


def test_external_redis_url_embeds_nothing(run_env, redis_url, tmp_path):
    run_env["REDIS_URL"] = redis_url
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        runner.wait_ready()
        assert port_closed(int(run_env["AGGREGATOR_REDIS_PORT"]))
    finally:
        runner.stop()


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("AGGREGATOR_PORT", "eighty", "AGGREGATOR_PORT"),
    ("AGGREGATOR_REDIS_PORT", "eighty", "AGGREGATOR_REDIS_PORT: Must be a port"),
    ("AGGREGATOR_REDIS_FSYNC", "no", "AGGREGATOR_REDIS_FSYNC: Must be one of: always, everysec."),
])
def test_invalid_configuration_stops_with_a_message(run_env, tmp_path, variable, value, message):
    run_env[variable] = value
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        assert runner.exit_code() == 2
    finally:
        runner.stop()
    assert message in runner.output()
