"""``make run``: embedded Redis (unless REDIS_URL), the sandbox bank and the AS, as one group.

Every process is a direct child in our process group (nothing daemonizes): Ctrl-C or a signal
to the group stops them all, and if one dies the others are stopped too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from config import ConfigError, load_settings


def _gunicorn(app: str, bind: str, workers: int, threads: int, env: dict[str, str]) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "gunicorn", app,
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


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def embedded_redis_url(data_dir: Path) -> str | None:
    """The URL of the Redis a running `make run` embedded for ``data_dir``, if any."""
    try:
        return (data_dir / "redis.url").read_text().strip() or None
    except OSError:
        return None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen]] = []
    embedded = None
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
            from aggregator.embedded_redis import EmbeddedRedis

            port = int(env.get("AGGREGATOR_REDIS_PORT", "6390"))
            embedded = EmbeddedRedis(settings.data_dir / "redis", port).start()
            redis_url = embedded.url
            (settings.data_dir / "redis.url").write_text(redis_url)  # for the `aggregator` CLI
            print(f"embedded Redis on {redis_url} (append-only file in "
                  f"{settings.data_dir / 'redis'})", flush=True)
        env["REDIS_URL"] = redis_url
        env.setdefault("PYTHONPATH", str(root))
        if "sandbox" in settings.plugins:
            bank_env = {**env, "SANDBOX_REDIS_URL": env.get("SANDBOX_REDIS_URL", redis_url)}
            bank = _gunicorn("plugins.sandbox.bank.wsgi:app",
                             f"127.0.0.1:{settings.sandbox_port}", 1, 16, bank_env)
            children.append(("sandbox bank", bank))
        server = _gunicorn("wsgi:app", f"{settings.host}:{settings.port}",
                           settings.workers, settings.threads, env)
        children.append(("authorization server", server))
        if _wait_http(f"http://127.0.0.1:{settings.port}/readyz", 60):
            print(f"\nAuthorization server: {settings.issuer}", flush=True)
            if "sandbox" in settings.plugins:
                print(f"Sandbox bank:         http://127.0.0.1:{settings.sandbox_port}", flush=True)
            print("Press Ctrl-C to stop.\n", flush=True)
        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with status {child.returncode}; stopping",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
