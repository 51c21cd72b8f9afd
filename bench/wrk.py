"""Load from ``wrk`` (C, one thread, keep-alive): the generator the issue's figures were taken
with. A Python generator tops out near the peer's rate on two cores and would flatter the ratio.

The request's method, headers and body go in a generated Lua script; answers whose status or body
fail the check are counted by the script and reported as errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.load import Request

_SCRIPT = """
wrk.method = %(method)s
wrk.body = %(body)s
wrk.headers = %(headers)s
bad = 0  -- a global, so that done() can read it with thread:get
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= %(status)d or not string.find(body, %(needle)s, 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  for _, thread in ipairs(threads) do errors = errors + thread:get("bad") end
  io.write(string.format('{"requests": %%d, "errors": %%d, "seconds": %%.3f, '
    .. '"p50_ms": %%.3f, "p99_ms": %%.3f}\\n', summary.requests, errors,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


@dataclass
class WrkStats:
    """One or more wrk runs: totals, and the latency percentiles of the slices."""

    count: int
    errors: int
    elapsed: float
    p50s: list[float]
    p99s: list[float]

    @property
    def throughput(self) -> float:
        return (self.count - self.errors) / self.elapsed if self.elapsed else 0.0

    def merged(self, other: WrkStats) -> WrkStats:
        return WrkStats(self.count + other.count, self.errors + other.errors,
                        self.elapsed + other.elapsed, self.p50s + other.p50s, self.p99s + other.p99s)

    def as_dict(self) -> dict:
        """p50 is the median of the slices' p50s, p99 the worst slice's p99 (wrk reports
        percentiles, not samples, so slices cannot be pooled exactly)."""
        ordered = sorted(self.p50s)
        return {"requests": self.count, "errors": self.errors, "seconds": round(self.elapsed, 3),
                "throughput_rps": round(self.throughput, 1),
                "p50_ms": round(ordered[len(ordered) // 2], 2) if ordered else None,
                "p99_ms": round(max(self.p99s), 2) if self.p99s else None}


def available() -> bool:
    return shutil.which("wrk") is not None


def hammer(base_url: str, request: Request, *, connections: int, seconds: float,
           expect_status: int = 200, expect_in_body: str = "") -> WrkStats:
    """``connections`` keep-alive connections on one wrk thread for ``seconds``."""
    script = _SCRIPT % {
        "method": json.dumps(request.method),
        "body": json.dumps((request.body or b"").decode()),
        "headers": "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}"
                                   for k, v in request.headers.items()) + "}",
        "status": expect_status,
        "needle": json.dumps(expect_in_body),
    }
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        path = Path(tmp) / "request.lua"
        path.write_text(script)
        done = subprocess.run(  # noqa: S603 - fixed arguments, loopback target
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(path),
             base_url + request.path],
            capture_output=True, text=True, check=True, timeout=seconds + 60)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return WrkStats(figures["requests"], figures["errors"], figures["seconds"],
                    [figures["p50_ms"]], [figures["p99_ms"]])
