"""The processes a benchmark runs, as in production: embedded Redis and gunicorn servers.

Each is a child process of the benchmark, stopped when it ends (also on Ctrl-C).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from aggregator.embedded_redis import EmbeddedRedis
from aggregator.testing.servers import reserve_port
from tests.cluster.local_cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent


class Cluster:
    """Start servers; ``close()`` (or leaving the ``with``) stops them all, newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = ExitStack()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def redis(self, appendfsync: str | None = None) -> EmbeddedRedis:
        """An embedded Redis; append-only with ``appendfsync`` when given, else in memory only."""
        port = reserve_port()
        server = EmbeddedRedis(self.workdir / f"redis-{port}", port, appendonly=appendfsync is not None,
                               appendfsync=appendfsync or "everysec").start()
        self._stack.callback(server.stop)
        return server

    def redis_cluster(self) -> LocalCluster:
        """A Redis Cluster of 3 masters and 3 replicas, as the tests start it."""
        started = LocalCluster(self.workdir / "redis-cluster").start()
        self._stack.callback(started.stop)
        return started

    def gunicorn(self, app: str, env: dict[str, str], *, workers: int, threads: int,
                 port: int | None = None, ready_path: str = "/healthz") -> Server:
        """Serve ``app`` with gthread workers; returns once it answers."""
        port = port or reserve_port()
        log = open(self.workdir / f"{app.replace(':', '_')}.log", "ab")  # noqa: SIM115
        self._stack.callback(log.close)
        path = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", app,
             "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers),
             "--worker-class", "gthread",
             "--threads", str(threads),
             "--backlog", "2048",
             "--log-level", "warning"],
            cwd=ROOT, env={**env, "PYTHONPATH": path}, stdout=log, stderr=log,
        )
        self._stack.callback(_stop, process)
        url = f"http://127.0.0.1:{port}"
        _wait(url + ready_path, process, app)
        return Server(url, process)


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server and its worker processes (Linux)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for child in [self.process.pid, *children(self.process.pid)]:
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return total / ticks


def children(pid: int) -> list[int]:
    """The pids of a process's children (Linux); none once it has exited."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(url: str, process: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer at {url} within {timeout:g} s")
