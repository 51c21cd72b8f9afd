"""A bounded load generator on loopback: threads with keep-alive HTTP connections."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stats:
    """Latencies (seconds) of the successful requests of one run, and what went wrong."""

    latencies: list[float]
    errors: int
    elapsed: float

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def merged(self, other: Stats) -> Stats:
        return Stats(self.latencies + other.latencies, self.errors + other.errors,
                     self.elapsed + other.elapsed)

    def as_dict(self) -> dict:
        return {"requests": self.count, "errors": self.errors, "seconds": round(self.elapsed, 3),
                "throughput_rps": round(self.throughput, 1),
                "p50_ms": round(self.percentile(50) * 1000, 2),
                "p99_ms": round(self.percentile(99) * 1000, 2),
                "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies
                else None}


Check = Callable[[int, bytes], bool]


def _ok(status: int, body: bytes) -> bool:
    return status == 200


def _connection(base_url: str) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)


def send(base_url: str, request: Request, conn: http.client.HTTPConnection | None = None
         ) -> tuple[int, bytes]:
    """One request (on ``conn`` when given, else a new connection)."""
    own = conn or _connection(base_url)
    try:
        own.request(request.method, request.path, body=request.body, headers=request.headers)
        answer = own.getresponse()
        return answer.status, answer.read()
    finally:
        if conn is None:
            own.close()


def hammer(base_url: str, request: Request, *, threads: int, seconds: float,
           warmup: float = 0.5, check: Check = _ok) -> Stats:
    """``threads`` clients send ``request`` back to back for ``seconds`` (after a warm-up)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    start = time.monotonic() + warmup
    stop = start + seconds

    def client(index: int) -> None:
        conn = _connection(base_url)
        try:
            while True:
                began = time.monotonic()
                if began >= stop:
                    return
                try:
                    status, body = send(base_url, request, conn)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = _connection(base_url)
                    status, body = 0, b""
                ended = time.monotonic()
                if began < start:
                    continue
                if check(status, body):
                    latencies[index].append(ended - began)
                else:
                    errors[index] += 1
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + warmup + 60)
    return Stats([x for per in latencies for x in per], sum(errors), seconds)


def burst(base_url: str, request: Request, *, count: int, check: Check = _ok) -> Stats:
    """``count`` requests released at the same instant (each on its own connection)."""
    gate = threading.Barrier(count + 1)
    latencies: list[float] = []
    errors: list[int] = []
    mutex = threading.Lock()

    def client() -> None:
        conn = _connection(base_url)
        conn.connect()
        gate.wait()
        began = time.monotonic()
        try:
            status, body = send(base_url, request, conn)
        except (OSError, http.client.HTTPException):
            status, body = 0, b""
        finally:
            conn.close()
        elapsed = time.monotonic() - began
        with mutex:
            if check(status, body):
                latencies.append(elapsed)
            else:
                errors.append(1)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    began = time.monotonic()
    gate.wait()
    for worker in workers:
        worker.join(120)
    return Stats(latencies, len(errors), time.monotonic() - began)


def repeat(base_url: str, request: Request, *, times: int, check: Check = _ok) -> Stats:
    """``times`` requests one after another (latency without contention)."""
    conn = _connection(base_url)
    latencies, errors = [], 0
    began = time.monotonic()
    try:
        for _ in range(times):
            started = time.monotonic()
            status, body = send(base_url, request, conn)
            if check(status, body):
                latencies.append(time.monotonic() - started)
            else:
                errors += 1
    finally:
        conn.close()
    return Stats(latencies, errors, time.monotonic() - began)
