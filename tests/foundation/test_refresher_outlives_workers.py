"""A web worker killed during a bank call loses no connection: under `make run` the refresher,
not the worker, owns the call and stores the rotated refresh token."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import requests

from aggregator.store import key_names
from aggregator.testing.servers import reserve_port
from tests.fixtures.aggregator import PersonAgent
from tests.fixtures.sandbox import SandboxBank
from tests.foundation.running import embedded_redis, start_runner
from tests.introspection.test_story import connect
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, code_flow, exchange, make_app


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def as_workers(runner_pid: int) -> list[int]:
    """The gunicorn workers serving the AS (``wsgi:app``), not the bank's."""
    for child in children(runner_pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"wsgi:app" in command:
            return children(child)
    return []


def test_a_web_worker_killed_during_the_bank_call_loses_no_connection(run_env, tmp_path):
    bank_port = reserve_port()
    run_env.update(AGGREGATOR_PLUGINS="sandbox", SANDBOX_PORT=str(bank_port),
                   AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN,
                   AGGREGATOR_UPSTREAM_TIMEOUT="10")
    runner = start_runner(run_env, tmp_path / "runner.log")
    try:
        runner.wait_ready()
        deadline = time.monotonic() + 30
        while not embedded_redis(run_env).exists(key_names.REFRESHER_ALIVE):
            assert time.monotonic() < deadline, runner.output()
            time.sleep(0.1)
        bank = SandboxBank(f"http://127.0.0.1:{bank_port}", "", "", "")
        # bank tokens shorter than the AS's 60 s freshness window: every look needs a refresh
        bank.admin.set_faults(access_token_ttl=30)
        nat = PersonAgent(runner.url)
        nat.signup("nat")
        connect(nat, bank, "astoria")
        server = SimpleNamespace(url=runner.url)
        app = make_app(server)
        params, verifier = code_flow(server, app, nat)
        token = exchange(app, params["code"], verifier).json()["access_token"]
        bank.admin.set_faults(latency_ms=2000)
        refreshes = bank.admin.stats()

        # a worker takes the introspection, the refresher the bank call; 1 s in, the workers die
        lost: list[BaseException] = []
        first = threading.Thread(target=lambda: _swallow(lost, lambda: app.post(
            "/introspect", {"token": token})))
        first.start()
        time.sleep(1.0)
        killed = as_workers(runner.process.pid)
        assert killed, runner.output()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        first.join(20)
        runner.wait_ready()  # gunicorn has new workers

        # the next look: the connection still works (the rotated refresh token was kept)
        answer = app.post("/introspect", {"token": token}, timeout=20)
        assert answer.status_code == 200, answer.text
        [entry] = answer.json()["institutions"].values()
        assert entry["status"] == "ok", entry
        data = requests.get(f"{entry['endpoint']}/accounts", timeout=20,
                            headers={"Authorization": f"Bearer {entry['access_token']}"})
        assert data.status_code == 200
        assert bank.admin.stats() != refreshes
    finally:
        runner.stop()


def _swallow(sink: list[BaseException], call) -> None:
    try:
        call()
    except Exception as exc:  # the killed worker's connection resets: expected
        sink.append(exc)
