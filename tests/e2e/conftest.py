"""The whole product on loopback for the browser story: ``python -m aggregator.runner`` (embedded
Redis, sandbox bank, AS under gunicorn) as a child process, the Grapher on a live server, and
headless Debian Chromium driven by Playwright.

The runner and Chromium start once per test module (several seconds each); every test gets its
own Grapher and its own browser profile (a fresh context: no cookies), and signs up its own
person with a unique username, so tests stay independent without emptying the AS between them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from aggregator.testing.servers import LiveServer, reserve_port, serve_wsgi
from examples.grapher import GrapherSettings, create_grapher_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
INITIAL_ACCESS_TOKEN = "e2e-initial-access-token"
ARTIFACTS = ROOT / "tests" / "artifacts" / "e2e"


@dataclass
class Stack:
    """A running ``aggregator.runner``: the AS (its issuer) and the sandbox bank."""

    as_url: str
    bank_url: str
    process: subprocess.Popen
    log: Path
    #: the runner's environment: its Redis port and data directory reach its records
    env: dict[str, str] = field(default_factory=dict, repr=False)


def _wait_ready(stack: Stack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    pending = [f"{stack.as_url}/readyz", f"{stack.bank_url}/institutions"]
    while pending and time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"the runner exited ({stack.process.returncode}):\n{stack.log.read_text()}")
        still = []
        for url in pending:
            try:
                ok = requests.get(url, timeout=3).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok:
                still.append(url)
        pending = still
        time.sleep(0.3)
    if pending:
        raise AssertionError(f"not ready in {timeout}s: {pending}\n{stack.log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the runner (it stops Redis, the bank and gunicorn itself), then the group."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=40)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything left in its own session
    process.wait(timeout=10)


@contextlib.contextmanager
def running_stack(tmp_path: Path, **extra_env: str) -> Iterator[Stack]:
    """``aggregator.runner`` on free ports, with ``extra_env`` on top of the e2e settings."""
    as_port, bank_port, redis_port = reserve_port(), reserve_port(), reserve_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update({
        "AGGREGATOR_PORT": str(as_port),
        "SANDBOX_PORT": str(bank_port),
        "AGGREGATOR_REDIS_PORT": str(redis_port),
        "AGGREGATOR_DATA_DIR": str(tmp_path / "var"),
        "AGGREGATOR_PLUGINS": "sandbox",
        "AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
        "AGGREGATOR_WORKERS": "2",
        "AGGREGATOR_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **extra_env,
    })
    env.pop("AGGREGATOR_ISSUER", None)
    log = tmp_path / "runner.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator.runner"], cwd=ROOT, env=env,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    running = Stack(f"http://127.0.0.1:{as_port}", f"http://127.0.0.1:{bank_port}", process, log, env)
    try:
        _wait_ready(running)
        yield running
    finally:
        _stop(process)
        # shown by pytest only when a test failed
        print(f"--- runner log ({log}) ---\n{log.read_text(errors='replace')[-6000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def grapher(stack: Stack) -> Iterator[LiveServer]:
    """The Grapher, preset to this AS, registering itself with the initial access token."""
    port = reserve_port()  # its redirect URI names the port, so it is chosen first
    settings = GrapherSettings(port=port, as_url=stack.as_url, initial_access_token=INITIAL_ACCESS_TOKEN)
    with serve_wsgi(create_grapher_app(settings), port=port) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, shared by the module's tests (each gets its own context in ``page``)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (`make browser` installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A fresh headless Chromium page in its own browser context (one profile: the person's)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        context.close()


class Screenshots:
    """``NN-step.png`` under tests/artifacts/e2e/, numbered in the order the story takes them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.png"):
            old.unlink()

    def take(self, page, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def screenshots() -> Screenshots:
    return Screenshots(ARTIFACTS)
