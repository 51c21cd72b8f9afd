"""Run a WSGI application on a real loopback HTTP server inside a test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class LiveServer:
    """A running server: ``url`` is ``http://127.0.0.1:<port>`` (no trailing slash)."""

    host: str
    port: int
    server: BaseWSGIServer

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve_wsgi(app, port: int = 0, host: str = "127.0.0.1") -> Iterator[LiveServer]:
    """Serve ``app`` on ``host:port`` (0 = any free port) in a daemon thread.

    The server is threaded, so concurrent requests (and requests that the app makes
    back to itself or to another live server) do not deadlock.
    """
    server = make_server(host, port, app, threaded=True)
    # shutdown() waits for the loop's next poll: with several servers stopped per test, 10 ms
    # (not 50) saves seconds per hundred tests for a negligible cost while idle
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield LiveServer(host, server.server_port, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reserve_port() -> int:
    """Find a free loopback port for a server that must know its URL before it starts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
