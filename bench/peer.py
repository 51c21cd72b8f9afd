"""The peer the introspection benchmark compares against: panva's node ``oidc-provider`` (pinned
in ``bench/peer/package.json``), in memory, one process, as its quick start runs it.

``npm ci`` installs it on first use. The peer issues a client_credentials token; its
introspection of that token is the workload the product's figures are divided by.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlencode

from bench.cluster import Server
from bench.load import Request

HERE = Path(__file__).resolve().parent / "peer"
CLIENT_ID = "bench"
CLIENT_SECRET = "bench-secret-bench-secret-bench-secret"  # noqa: S105 - the peer's fixed test client
AUTH = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
FORM = "application/x-www-form-urlencoded"


def install() -> None:
    """``npm ci`` once: the lock file pins oidc-provider and everything it pulls in."""
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE,  # noqa: S607
                       check=True, timeout=600)


class Peer(AbstractContextManager):
    """The running peer on ``port``; ``introspection`` is the request to measure."""

    def __init__(self, port: int, log: Path) -> None:
        install()
        self._log = log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            ["node", "server.mjs"], cwd=HERE,
            env={"PEER_PORT": str(port), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdout=subprocess.PIPE, stderr=self._log)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            self.__exit__()
            raise RuntimeError(f"the peer did not start; see {log}")
        self.server = Server(f"http://127.0.0.1:{port}", self.process)
        self.introspection = Request("POST", "/token/introspection",
                                     urlencode({"token": self._token()}).encode(),
                                     {"Authorization": AUTH, "Content-Type": FORM})

    def _token(self) -> str:
        asked = urllib.request.Request(  # noqa: S310 - loopback
            self.server.url + "/token", method="POST",
            data=urlencode({"grant_type": "client_credentials", "scope": "accounts:read"}).encode(),
            headers={"Authorization": AUTH, "Content-Type": FORM})
        with urllib.request.urlopen(asked, timeout=10) as answer:  # noqa: S310 - loopback
            return json.load(answer)["access_token"]

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self._log.close()
