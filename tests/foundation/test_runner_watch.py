"""`make run` watches the Redis it embeds: never someone else's, restarted when it dies, its
durability chosen by AGGREGATOR_REDIS_FSYNC, its log kept under the data directory."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.fixtures.aggregator import PersonAgent
from tests.foundation.running import embedded_redis, port_closed, start_runner


def _listen(port: int) -> socket.socket:
    """Something else's server on ``port`` (SO_REUSEADDR: a just-killed Redis leaves TIME_WAITs)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.parametrize("occupant", ["a listening socket", "another Redis"])
def test_a_taken_redis_port_stops_the_runner_before_anything_starts(run_env, tmp_path, occupant,
                                                                     redis_server):
    if occupant == "another Redis":  # the fault campaign's case: it answers PING
        run_env["AGGREGATOR_REDIS_PORT"] = str(redis_server.port)
        taken = None
    else:
        taken = _listen(int(run_env["AGGREGATOR_REDIS_PORT"]))
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        assert runner.exit_code() != 0
    finally:
        runner.stop()
        if taken is not None:
            taken.close()
    output = runner.output()
    assert f"Port {run_env['AGGREGATOR_REDIS_PORT']} (the embedded Redis) is already in use" in output
    assert "AGGREGATOR_REDIS_PORT=" in output
    assert port_closed(int(run_env["AGGREGATOR_PORT"])), "the AS must not have started"


def test_a_killed_redis_is_restarted_with_its_data_and_durability(run_env, tmp_path):
    run_env["AGGREGATOR_REDIS_FSYNC"] = "always"
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        runner.wait_ready()
        PersonAgent(runner.url).signup("survivor", "outlives redis 123")
        client = embedded_redis(run_env)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        old_pid = client.info("server")["process_id"]

        killed = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        runner.wait_for_output("embedded Redis exited (code -9); restarting", timeout=10)
        noticed = time.monotonic() - killed
        runner.wait_for_output("embedded Redis restarted", timeout=15)
        back = time.monotonic() - killed
        runner.wait_ready(timeout=30)
        ready = time.monotonic() - killed
        print(f"\nafter the kill: noticed {noticed:.2f} s, Redis back {back:.2f} s, "
              f"/readyz 200 {ready:.2f} s")
        assert ready < 15

        assert client.info("server")["process_id"] != old_pid
        assert client.config_get("appendfsync") == {"appendfsync": "always"}, "kept on restart"
        response = PersonAgent(runner.url).login("survivor", "outlives redis 123")
        assert response.status_code == 302, "a person who signed up before the kill can log in"
        assert runner.process.poll() is None, "the runner kept going"
    finally:
        runner.stop()
    assert runner.process.returncode == 0
    log = Path(run_env["AGGREGATOR_DATA_DIR"]) / "redis" / "redis.log"
    assert log.read_text().count("Ready to accept connections") == 2, "both servers log there"


def test_a_redis_that_cannot_come_back_stops_everything(run_env, tmp_path):
    runner = start_runner(run_env, tmp_path / "runner.log")
    taken = None
    try:
        runner.wait_ready()
        redis_pid = embedded_redis(run_env).info("server")["process_id"]
        os.kill(runner.process.pid, signal.SIGSTOP)  # so the port is taken before it looks
        try:
            os.kill(redis_pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while taken is None:
                try:
                    taken = _listen(int(run_env["AGGREGATOR_REDIS_PORT"]))
                except OSError:  # the dying Redis still holds it
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
        finally:
            os.kill(runner.process.pid, signal.SIGCONT)
        resumed = time.monotonic()
        assert runner.exit_code(timeout=60) == 1
        print(f"\ngave up and stopped everything {time.monotonic() - resumed:.2f} s after resuming")
    finally:
        runner.stop()
        if taken is not None:
            taken.close()
    output = runner.output()
    assert "embedded Redis exited (code -9); restarting" in output
    assert "embedded Redis could not be kept running" in output
    assert port_closed(int(run_env["AGGREGATOR_PORT"])), "the AS was stopped too"
