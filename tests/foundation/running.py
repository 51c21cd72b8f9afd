"""`make run` (``python -m aggregator.runner``) as a test drives it: a real process group whose
output goes to a file, stopped the way Ctrl-C stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Runner:
    """A running ``aggregator.runner`` in its own process group; ``log`` holds its output."""

    process: subprocess.Popen
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30) -> float:
        """Seconds until ``text`` appears in the output."""
        started = time.monotonic()
        while text not in self.output():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds until ``/readyz`` answers 200; fails at once if the runner exits."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"runner exited {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready within {timeout} s:\n{self.output()}")

    def exit_code(self, timeout: float = 30) -> int:
        """Wait for the runner to stop on its own."""
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Ctrl-C to the group, then SIGKILL to whatever is left of it."""
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C does to the foreground group
            self.process.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # anything left in the group
            self.process.wait(timeout=10)


def start_runner(env: dict[str, str], log: Path) -> Runner:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator.runner"], cwd=ROOT, env=env,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Runner(process, log, f"http://127.0.0.1:{env['AGGREGATOR_PORT']}")


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def embedded_redis(env: dict[str, str]) -> redis.Redis:
    """A client of the runner's embedded Redis."""
    return redis.Redis(port=int(env["AGGREGATOR_REDIS_PORT"]), socket_timeout=5)


def start_gunicorn(env: dict[str, str], log: Path, *, workers: int = 1, threads: int = 4) -> Runner:
    """The AS (``wsgi:app``) under gunicorn as ``make run`` serves it, at ``AGGREGATOR_PORT``, in
    its own process group; ``Runner.stop`` ends it like Ctrl-C, SIGTERM to ``process`` gracefully."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--config", "python:aggregator.gunicorn_conf",
             "--bind", f"127.0.0.1:{env['AGGREGATOR_PORT']}", "--workers", str(workers),
             "--worker-class", "gthread", "--threads", str(threads), "--graceful-timeout", "20",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Runner(process, log, f"http://127.0.0.1:{env['AGGREGATOR_PORT']}")
