"""`make run`'s runner: embedded Redis + the AS as one process group, data kept across restarts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from aggregator.testing.servers import reserve_port
from tests.fixtures.aggregator import PersonAgent

ROOT = Path(__file__).resolve().parents[2]


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator.runner"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode())
        try:
            if requests.get(url + "/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("not ready within a minute")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does to the foreground group
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def run_env(tmp_path):
    port, redis_port = reserve_port(), reserve_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({
        "AGGREGATOR_PORT": str(port),
        "AGGREGATOR_REDIS_PORT": str(redis_port),
        "AGGREGATOR_DATA_DIR": str(tmp_path / "var"),
        "AGGREGATOR_PLUGINS": "",
        "AGGREGATOR_WORKERS": "2",
        "AGGREGATOR_LOG_LEVEL": "WARNING",
    })
    return env


def test_run_serves_restarts_and_keeps_people(run_env):
    url = f"http://127.0.0.1:{run_env['AGGREGATOR_PORT']}"
    process = _start(run_env)
    try:
        elapsed = _wait_ready(url, process)
        assert elapsed < 60
        PersonAgent(url).signup("persistent", "survives restarts 123")
    finally:
        _stop(process)
    assert process.returncode == 0
    for port in (int(run_env["AGGREGATOR_PORT"]), int(run_env["AGGREGATOR_REDIS_PORT"])):
        assert _port_closed(port), f"something still listens on {port} after Ctrl-C"
    assert (Path(run_env["AGGREGATOR_DATA_DIR"]) / "redis").is_dir()

    process = _start(run_env)
    try:
        _wait_ready(url, process)
        response = PersonAgent(url).login("persistent", "survives restarts 123")
        assert response.status_code == 302, "a person created before the restart can log in"
    finally:
        _stop(process)


def test_external_redis_url_embeds_nothing(run_env, redis_url):
    run_env["REDIS_URL"] = redis_url
    url = f"http://127.0.0.1:{run_env['AGGREGATOR_PORT']}"
    process = _start(run_env)
    try:
        _wait_ready(url, process)
        assert _port_closed(int(run_env["AGGREGATOR_REDIS_PORT"]))
    finally:
        _stop(process)


def test_invalid_configuration_stops_with_a_message(run_env):
    run_env["AGGREGATOR_PORT"] = "eighty"
    process = _start(run_env)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert b"AGGREGATOR_PORT" in output
