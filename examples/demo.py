"""``make demo``: the whole story on one machine.

Starts ``python -m aggregator.runner`` (embedded Redis, the sandbox bank, the AS) and the Grapher,
as children in this process group, prints where to click, and stops everything on Ctrl-C (or a
SIGTERM to this process) or as soon as one of them exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: a development value: the AS refuses it in production mode
DEMO_INITIAL_ACCESS_TOKEN = "demo-initial-access-token"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our loopback URLs
            return response.status == 200
    except OSError:
        return False


def _wait(children: list[tuple[str, subprocess.Popen]], urls: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        if any(child.poll() is not None for _, child in children):
            return False
        pending = [url for url in pending if not _ready(url)]
        time.sleep(0.3)
    return not pending


def _instructions(as_url: str, bank_url: str, grapher_url: str, fapi2: bool) -> str:
    mode = ("\n  The Grapher is in FAPI 2.0 mode (GRAPHER_FAPI2): private_key_jwt, PAR, and a DPoP-bound\n"
            "  token; its page says \"FAPI 2.0 · DPoP-bound token\".\n") if fapi2 else ""
    return f"""
  Authorization server  {as_url}
  Sandbox bank          {bank_url}
  Grapher               {grapher_url}

  1. Open {as_url}/signup and create an account (password: 12 characters or more).
  2. Connect an institution: "Connect Bank of Astoria", then at the sandbox bank sign in with
     any username and the password "sandbox" and approve. Do the same for "Monami Card".
  3. Open {grapher_url} and press "Connect my Authorization Server".
  4. At your authorization server, tick the institutions the Grapher may read and press Allow.
  5. The Grapher draws your balances and monthly spending.
  6. Revoke the Grapher's access on {as_url}/ ("Revoke access"), reload the Grapher:
     it says access has ended.
  7. On the Grapher, press "Pay £1.50": pick Bank of Astoria at your authorization server,
     approve at the bank, and the Grapher shows the payment completed (and Astoria's
     transactions show it).
{mode}
  Press Ctrl-C to stop everything.
"""


def main() -> int:
    env = dict(os.environ)
    env.setdefault("AGGREGATOR_INITIAL_ACCESS_TOKEN", DEMO_INITIAL_ACCESS_TOKEN)
    env.setdefault("PYTHONPATH", str(ROOT))
    env.setdefault("AGGREGATOR_LOG_LEVEL", "WARNING")  # keeps the instructions readable
    as_port = env.setdefault("AGGREGATOR_PORT", "8000")
    bank_port = env.setdefault("SANDBOX_PORT", "8001")
    grapher_port = env.setdefault("GRAPHER_PORT", "8002")
    as_url = env.get("AGGREGATOR_ISSUER", f"http://127.0.0.1:{as_port}").rstrip("/")
    grapher_url = f"http://127.0.0.1:{grapher_port}"
    env.setdefault("GRAPHER_AS_URL", as_url)
    env.setdefault("GRAPHER_INITIAL_ACCESS_TOKEN", env["AGGREGATOR_INITIAL_ACCESS_TOKEN"])
    if env.get("AGGREGATOR_PROFILE", "").lower() == "fapi2":
        env.setdefault("GRAPHER_FAPI2", "true")  # DPoP-bound tokens, as the AS's profile asks

    signal.signal(signal.SIGTERM, _raise_interrupt)
    children: list[tuple[str, subprocess.Popen]] = []
    interrupted = False
    try:
        # Same process group as us (no new session): Ctrl-C in the terminal reaches every child.
        children.append(("authorization server",
                         subprocess.Popen([sys.executable, "-m", "aggregator.runner"], cwd=ROOT, env=env)))  # noqa: S603
        children.append(("Grapher",
                         subprocess.Popen([sys.executable, "-m", "examples.grapher"], cwd=ROOT, env=env)))  # noqa: S603
        if not _wait(children, [f"http://127.0.0.1:{as_port}/readyz", f"{grapher_url}/healthz"], 90):
            print("the demo did not start; see the messages above", file=sys.stderr)
            return 1
        fapi2 = env.get("GRAPHER_FAPI2", "").lower() in ("true", "1", "yes")
        print(_instructions(as_url, f"http://127.0.0.1:{bank_port}", grapher_url, fapi2), flush=True)
        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with status {child.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
        return 0
    finally:
        _stop(children, interrupted)


def _stop(children: list[tuple[str, subprocess.Popen]], interrupted: bool) -> None:
    """Stop every child once, and let each finish its own clean-up.

    A signal to the whole group (Ctrl-C in the terminal, ``kill -- -PGID``) already reached every
    child, and a second one would cut the runner's clean-up (Redis, bank, AS) short. The Grapher
    exits at once on a signal, so it tells the two cases apart: gone within two seconds means the
    group was signalled and we only wait; still running means the signal was for us alone.
    """
    grapher = children[-1][1] if len(children) == 2 else None
    if interrupted and grapher is not None and _exits(grapher, 2.0):
        deadline = time.monotonic() + 45
        for _, child in children:
            _exits(child, max(0.0, deadline - time.monotonic()))
    for _, child in reversed(children):
        if child.poll() is None:
            child.terminate()  # the runner stops its own children (Redis, bank, gunicorn) on SIGTERM
    for _, child in reversed(children):
        if not _exits(child, 30):
            child.kill()
            child.wait()


def _exits(child: subprocess.Popen, timeout: float) -> bool:
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
