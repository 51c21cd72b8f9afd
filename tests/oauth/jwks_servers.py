"""Local servers a client might name as its ``jwks_uri``: one that counts its hits, and one that
drips its answer. Both listen on 127.0.0.1 only and stop with their ``with`` block."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aggregator.testing.servers import serve_wsgi


@dataclass
class Published:
    """A running server: ``url`` of its key set and the ``hits`` it has counted."""

    url: str
    hits: list[str] = field(default_factory=list)


@contextmanager
def jwks_server(answer: Callable[[str], tuple[str, list[tuple[str, str]], bytes]]) -> Iterator[Published]:
    """Serve ``answer(path) -> (status, headers, body)``, counting every request by path."""
    published = Published("")

    def app(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        published.hits.append(environ["PATH_INFO"])
        status, headers, body = answer(environ["PATH_INFO"])
        start_response(status, headers)
        return [body]

    with serve_wsgi(app) as server:
        published.url = f"{server.url}/jwks"
        yield published


def keys_answer(*keys: Any, cache_control: str | None = None) -> Callable[[str], tuple[str, list, bytes]]:
    """An answer publishing ``keys`` (public parts)."""
    body = json.dumps({"keys": [key.as_dict(private=False) for key in keys]}).encode()
    headers = [("Content-Type", "application/json")]
    if cache_control:
        headers.append(("Cache-Control", cache_control))
    return lambda path: ("200 OK", headers, body)


@contextmanager
def drip_server(interval: float, *, length: int = 100, limit: float = 30) -> Iterator[Published]:
    """Answers every request with a 200 whose ``length``-byte body comes one byte every
    ``interval`` seconds; each connection is dropped after ``limit`` seconds at most."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    published = Published(f"http://127.0.0.1:{listener.getsockname()[1]}/jwks")
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        started = time.monotonic()
        with conn:
            try:
                conn.recv(65536)
                published.hits.append("/jwks")
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % length)
                for _ in range(length):
                    if stop.wait(interval) or time.monotonic() - started > limit:
                        return
                    conn.sendall(b" ")
            except OSError:
                return  # the AS hung up: what we are testing

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield published
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
