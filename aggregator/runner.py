"""``make run``: embedded Redis (unless REDIS_URL), the sandbox bank and the AS, as one group.

Every process is a direct child in our process group (nothing daemonizes): Ctrl-C or a signal
to the group stops them all. The embedded Redis is watched: if it dies it is restarted on the
same port and data directory (the append-only file is reloaded), a few times at most, since the
AS only answers 503 meanwhile. If gunicorn (the AS or the bank) dies, the others are stopped too:
its master already restarts dead workers, so a dead master means a fault restarting would repeat.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aggregator.embedded_redis import EmbeddedRedis, RedisPortInUse
from aggregator.metrics import MULTIPROC_ENV, process_exited
from config import ConfigError, Settings, load_settings

DEFAULT_REDIS_PORT = 6390
#: restarts of the embedded Redis (or of a worker: refresher, event delivery) allowed within
#: RESTART_WINDOW seconds; more means a fault that restarting does not cure (a corrupt
#: append-only file, a full disk)
MAX_REDIS_RESTARTS = 5
RESTART_WINDOW = 60.0


def _gunicorn(app: str, bind: str, workers: int, threads: int, env: dict[str, str],
              config: str | None = None) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "gunicorn", app,
        *(["--config", config] if config else []),
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--graceful-timeout", "20",
        "--timeout", "60",
        "--log-level", "warning",
    ]
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(args, env=env, cwd=root)  # noqa: S603


def _refresher(env: dict[str, str]) -> subprocess.Popen:
    """The process that makes upstream refreshes (``aggregator refresher run``)."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, "-m", "aggregator.introspection.refresher"],  # noqa: S603
                            env=env, cwd=root)


def _event_delivery(env: dict[str, str]) -> subprocess.Popen:
    """The process that delivers events to apps (``aggregator events run``)."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, "-m", "aggregator.events.delivery"],  # noqa: S603
                            env=env, cwd=root)


#: the workers beside gunicorn, restarted when they exit (their work waits in Redis meanwhile)
_WORKERS = {"refresher": _refresher, "event delivery": _event_delivery}


def _fresh_metrics_dir(data_dir: Path) -> Path:
    """An empty directory for the metrics of this run's processes (prometheus_client's
    multiprocess mode): a previous run's files would add its counts to this one's."""
    path = data_dir / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _may_restart(restarts: list[float], limit: int = MAX_REDIS_RESTARTS,
                 window: float = RESTART_WINDOW) -> bool:
    """At most ``limit`` restarts in ``window`` seconds; records this one when allowed."""
    now = time.monotonic()
    restarts[:] = [at for at in restarts if now - at < window]
    if len(restarts) >= limit:
        return False
    restarts.append(now)
    return True


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


def _redis_port(env: dict[str, str]) -> int:
    text = env.get("AGGREGATOR_REDIS_PORT") or str(DEFAULT_REDIS_PORT)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError("Invalid configuration:\n  AGGREGATOR_REDIS_PORT: Must be a port (1-65535).")
    return int(text)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RedisWatch:
    """Restarts the embedded Redis when it exits, within a budget, loudly."""

    def __init__(self, server: EmbeddedRedis, limit: int = MAX_REDIS_RESTARTS,
                 window: float = RESTART_WINDOW) -> None:
        self.server = server
        self.limit = limit
        self.window = window
        self.restarts: list[float] = []
        self.retrying = False  # the last restart failed: try again without waiting for an exit

    def check(self) -> bool:
        """Restart the server if it is not running; False once the budget is spent."""
        if not self.retrying:
            code = self.server.exit_code()
            if code is None:
                return True
            _say(f"embedded Redis exited (code {code}); restarting")
        if not _may_restart(self.restarts, self.limit, self.window):
            _say(f"embedded Redis could not be kept running ({len(self.restarts)} restarts in "
                 f"{self.window:.0f} s); stopping everything. Its log: {self.server.log_file}")
            return False
        try:
            self.server.start()
        except RuntimeError as exc:
            self.retrying = True
            _say(f"embedded Redis did not restart: {exc}")
            return True
        self.retrying = False
        _say(f"embedded Redis restarted on {self.server.url} (pid {self.server.process.pid})")
        return True


def _start_embedded_redis(settings: Settings, port: int) -> EmbeddedRedis | None:
    """Our own redis-server, or None (having said why) when it cannot start."""
    server = EmbeddedRedis(settings.data_dir / "redis", port, appendfsync=settings.redis_fsync)
    try:
        return server.start()
    except RedisPortInUse:
        _say(f"Port {port} (the embedded Redis) is already in use: another `make run` or Redis? "
             f"Stop it, choose another port with AGGREGATOR_REDIS_PORT=<port>, or set REDIS_URL "
             f"to use an external Redis. Nothing was started.")
    except RuntimeError as exc:
        _say(f"The embedded Redis did not start: {exc}")
    return None


def embedded_redis_url(data_dir: Path) -> str | None:
    """The URL of the Redis a running `make run` embedded for ``data_dir``, if any."""
    try:
        return (data_dir / "redis.url").read_text().strip() or None
    except OSError:
        return None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    env = dict(os.environ)
    try:
        settings = load_settings()
        redis_port = _redis_port(env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    children: list[tuple[str, subprocess.Popen]] = []
    embedded: EmbeddedRedis | None = None
    watch: RedisWatch | None = None
    root = Path(__file__).resolve().parent.parent

    def stop(*_: object) -> None:
        for _, child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for _, child in reversed(children):
            try:
                child.wait(timeout=25)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.stop()
            (settings.data_dir / "redis.url").unlink(missing_ok=True)

    # explicit, so Ctrl-C works even when started where SIGINT is ignored (a background job)
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if settings.redis_url:
            redis_url = settings.redis_url
        else:
            embedded = _start_embedded_redis(settings, redis_port)
            if embedded is None:
                return 1
            watch = RedisWatch(embedded)
            redis_url = embedded.url
            (settings.data_dir / "redis.url").write_text(redis_url)  # for the `aggregator` CLI
            print(f"embedded Redis on {redis_url} (append-only file in {embedded.data_dir}, "
                  f"appendfsync {embedded.appendfsync}, log {embedded.log_file})", flush=True)
        env["REDIS_URL"] = redis_url
        env.setdefault("PYTHONPATH", str(root))
        if "sandbox" in settings.plugins:
            bank_env = {**env, "SANDBOX_REDIS_URL": env.get("SANDBOX_REDIS_URL", redis_url)}
            bank = _gunicorn("plugins.sandbox.bank.wsgi:app",
                             f"127.0.0.1:{settings.sandbox_port}", 1, 16, bank_env)
            children.append(("sandbox bank", bank))
        # the AS's workers and the refresher count into one directory; /metrics adds them up
        env[MULTIPROC_ENV] = str(_fresh_metrics_dir(settings.data_dir))
        server = _gunicorn("wsgi:app", f"{settings.host}:{settings.port}",
                           settings.workers, settings.threads, env,
                           config="python:aggregator.gunicorn_conf")
        children.append(("authorization server", server))
        # the refresher owns bank calls; stopped last-but-first so it finishes jobs in hand
        children.append(("refresher", _refresher(env)))
        children.append(("event delivery", _event_delivery(env)))
        restarts: dict[str, list[float]] = {name: [] for name in _WORKERS}
        announced = False
        while True:
            for index, (name, child) in enumerate(children):
                if child.poll() is None:
                    continue
                if name in _WORKERS and _may_restart(restarts[name]):
                    # their work stays queued in Redis (refresh jobs, outboxes, deliveries)
                    _say(f"{name} exited with status {child.returncode}; restarting")
                    process_exited(child.pid, env[MULTIPROC_ENV])
                    children[index] = (name, _WORKERS[name](env))
                    continue
                _say(f"{name} exited with status {child.returncode}; stopping")
                return 1
            if watch is not None and not watch.check():
                return 1
            if not announced and _answers_200(f"http://127.0.0.1:{settings.port}/readyz"):
                announced = True
                print(f"\nAuthorization server: {settings.issuer}", flush=True)
                if "sandbox" in settings.plugins:
                    print(f"Sandbox bank:         http://127.0.0.1:{settings.sandbox_port}", flush=True)
                print("Press Ctrl-C to stop.\n", flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
