"""The soak run: ``make run`` (``python -m aggregator.runner``) under steady load while its
embedded Redis and its AS workers are killed, then a check that nobody lost a connection.

From a few threads, for ``seconds``: newcomers sign up (each from their own address), link one or
two sandbox institutions through the AS's pages and the bank's, and give an app registered at
``/register`` their consent (code flow with PKCE); pollers introspect every person's token in
turn. Bank tokens live 65 s against the AS's 60 s freshness window, so nearly every
introspection has the refresher renew and the bank rotate a refresh token. Meanwhile the
embedded Redis is SIGKILLed three times (the runner restarts it) and one gunicorn AS worker five
times (gunicorn respawns it). At the end every person's next introspection must list all their
institutions as ``ok`` with a token the bank accepts at ``{endpoint}/accounts``.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from aggregator.store import key_names
from aggregator.testing.servers import reserve_port
from bench import report
from bench.cluster import children
from plugins.sandbox.bank.institutions import INSTITUTIONS
from tests.fixtures.aggregator import PersonAgent
from tests.fixtures.sandbox import CLIENT_ID, CLIENT_SECRET, SandboxAdmin, SandboxBank
from tests.foundation.running import Runner, embedded_redis, start_runner
from tests.introspection.test_story import accounts, connect
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, App, code_flow, exchange, make_app

BANK_TOKEN_TTL = 65  # seconds: just past the AS's 60 s freshness window
FLOW_THREADS, POLL_THREADS = 2, 2
FLOW_PACE = 1.0  # seconds per newcomer and flow thread at most: about two flows a second
POLL_PAUSE = 0.05  # seconds between one poller's introspections
#: when, as fractions of the run, the embedded Redis and an AS worker are killed (a worker that
#: boots while Redis is down fails to boot, so the two never come close)
REDIS_KILLS = (0.2, 0.45, 0.75)
WORKER_KILLS = (0.1, 0.3, 0.58, 0.66, 0.88)
SETTLE = 4.0  # seconds after a kill before the next one: a respawned worker boots meanwhile


@dataclass(frozen=True)
class Server:
    """The AS as the app helpers need it: its issuer URL."""

    url: str


@dataclass(frozen=True)
class Person:
    """A newcomer who finished: their app token and how many institutions they linked."""

    name: str
    token: str
    institutions: int


@dataclass
class Soak:
    """What the load threads share and count."""

    runner: Runner
    env: dict[str, str]
    bank: SandboxBank
    app: App
    stop_at: float
    began: float = field(default_factory=time.monotonic)
    people: list[Person] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)  # (server, status) -> requests
    entries: Counter = field(default_factory=Counter)  # introspected institution status -> count
    failed_flows: Counter = field(default_factory=Counter)  # why a newcomer did not finish
    server_errors: list[dict[str, Any]] = field(default_factory=list)  # AS 5xx other than 503
    events: list[dict[str, Any]] = field(default_factory=list)  # kills, and what they took
    introspections: int = 0
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def at(self) -> float:
        return round(time.monotonic() - self.began, 2)

    def record(self, url: str, status: int, body: str = "") -> None:
        server = "as" if url.startswith(self.runner.url) else "bank"
        with self.mutex:
            self.statuses[server, status] += 1
            if server == "as" and status >= 500 and status != 503:
                self.server_errors.append({"t": self.at(), "status": status,
                                           "url": url.split("?")[0], "body": body[:300]})

    def event(self, what: str, **details: Any) -> None:
        with self.mutex:
            self.events.append({"t": self.at(), "event": what, **details})
        print(f"  [{self.at():7.1f} s] {what} {details or ''}", flush=True)


@contextmanager
def counting(soak: Soak) -> Iterator[None]:
    """Count the status of every request ``requests`` sends in this process (0: no answer)."""
    original = requests.Session.send

    def send(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any
             ) -> requests.Response:
        try:
            response = original(session, request, **kwargs)
        except requests.RequestException:
            soak.record(request.url or "", 0)
            raise
        soak.record(request.url or "", response.status_code,
                    response.text if response.status_code >= 500 else "")
        return response

    requests.Session.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        requests.Session.send = original  # type: ignore[method-assign]


def newcomer(soak: Soak, name: str, address: str) -> Person:
    """Sign up, link one or two institutions, consent to the app; the app's token."""
    agent = PersonAgent(soak.runner.url)
    agent.http.headers["X-Forwarded-For"] = address  # the sign-up throttle counts per address
    agent.signup(name)
    slugs = random.sample(sorted(INSTITUTIONS), random.choice((1, 2)))
    for slug in slugs:
        connect(agent, soak.bank, slug, username=name)
    params, verifier = code_flow(Server(soak.runner.url), soak.app, agent)  # type: ignore[arg-type]
    answer = exchange(soak.app, params["code"], verifier)
    assert answer.status_code == 200, answer.text
    return Person(name, answer.json()["access_token"], len(slugs))


def flows(soak: Soak, thread: int) -> None:
    """Newcomers one after another, at most one per ``FLOW_PACE``."""
    n = 0
    while time.monotonic() < soak.stop_at:
        started = time.monotonic()
        n += 1
        try:
            person = newcomer(soak, f"soak-{thread}-{n}", f"10.{thread}.{n // 250}.{n % 250 + 1}")
        except Exception as exc:  # noqa: BLE001 - counted: expected while Redis is down
            with soak.mutex:
                soak.failed_flows[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
        else:
            with soak.mutex:
                soak.people.append(person)
        time.sleep(max(0.0, FLOW_PACE - (time.monotonic() - started)))


def introspect(soak: Soak, person: Person) -> dict[str, Any] | None:
    """The app introspects ``person``'s token; the body when it answered 200."""
    answer = soak.app.post("/introspect", {"token": person.token})
    with soak.mutex:
        soak.introspections += 1
    return answer.json() if answer.status_code == 200 else None


def poll(soak: Soak, thread: int) -> None:
    """Introspect every person's token in turn (this thread's share of them)."""
    turn = thread
    while time.monotonic() < soak.stop_at:
        if not soak.people:
            time.sleep(0.2)
            continue
        person = soak.people[turn % len(soak.people)]
        turn += POLL_THREADS
        try:
            body = introspect(soak, person)
        except requests.RequestException:
            body = None
        for entry in (body or {}).get("institutions", {}).values():
            with soak.mutex:
                soak.entries[entry["status"]] += 1
        time.sleep(POLL_PAUSE)


def as_master(runner: Runner) -> int:
    """The gunicorn master serving ``wsgi:app`` among the runner's children."""
    for pid in children(runner.process.pid):
        if "wsgi:app" in Path(f"/proc/{pid}/cmdline").read_text().split("\0"):
            return pid
    raise RuntimeError("no gunicorn serving wsgi:app under the runner")


def kill_worker(soak: Soak) -> None:
    """SIGKILL one AS worker; return once gunicorn has booted a new one."""
    master = as_master(soak.runner)
    workers = children(master)
    victim = random.choice(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = children(master)
        if victim not in now and len(now) == len(workers):
            break
        time.sleep(0.1)
    soak.event("worker killed", pid=victim, respawned=sorted(set(children(master)) - set(workers)))


def kill_redis(soak: Soak) -> None:
    """SIGKILL the embedded Redis; return once the runner has restarted it and /readyz is 200."""
    restarts = soak.runner.output().count("embedded Redis restarted")
    client = embedded_redis(soak.env)
    try:
        pid = client.info("server")["process_id"]
    finally:
        client.close()
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    deadline = killed + 30
    while soak.runner.output().count("embedded Redis restarted") == restarts:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis not restarted:\n{soak.runner.output()[-2000:]}")
        time.sleep(0.05)
    back = time.monotonic() - killed
    soak.runner.wait_ready(timeout=30)
    soak.event("redis killed", pid=pid, back_s=round(back, 2),
               ready_s=round(time.monotonic() - killed, 2))


def chaos(soak: Soak, seconds: float) -> None:
    """The kills, at their fractions of the run, each after the previous one has settled."""
    plan = sorted([(f, kill_redis) for f in REDIS_KILLS] + [(f, kill_worker) for f in WORKER_KILLS],
                  key=lambda step: step[0])
    for fraction, kill in plan:
        time.sleep(max(0.0, soak.began + fraction * seconds - time.monotonic()))
        soak.runner.wait_ready(timeout=30)
        kill(soak)
        time.sleep(SETTLE)


def settled(soak: Soak, person: Person) -> tuple[list[dict[str, Any]], bool]:
    """``person``'s introspected institutions, and whether they are all there and ``ok``."""
    body = introspect(soak, person) or {}
    entries = list(body.get("institutions", {}).values())
    return entries, len(entries) == person.institutions and all(e["status"] == "ok" for e in entries)


def stuck_job(soak: Soak, registration_id: str) -> dict[str, Any]:
    """What the refresh queue holds for a registration stuck "being refreshed" (evidence)."""
    client = embedded_redis(soak.env)
    try:
        markers = list(client.scan_iter(match=key_names.refresh_job("*", registration_id, "*"),
                                        count=1000))
        queued = sum(fields.get(b"registration_id") == registration_id.encode()
                     for _, fields in client.xrange(key_names.REFRESH_JOBS))
        return {"markers_pttl_ms": [client.pttl(m) for m in markers], "jobs_in_stream": queued}
    finally:
        client.close()


def check_everyone(soak: Soak, patience: float = 150.0) -> Counter:
    """Each person's next introspection: ``ok`` (every institution listed, ``ok``, its token
    accepted by the bank) or what went wrong. People not settled at once are asked again every
    few seconds for up to ``patience`` seconds: a stall, if they settle, else lost."""
    outcomes: Counter = Counter()
    waiting = []
    for person in soak.people:
        entries, ok = settled(soak, person)
        if not ok:
            waiting.append(person)
            soak.event("not settled", person=person.name, entries=entries, queue=[
                stuck_job(soak, e["registration_id"]) for e in entries if e["status"] == "error"])
            continue
        for entry in entries:
            outcomes["ok" if accounts(entry).status_code == 200 else "rejected_by_bank"] += 1
    began = time.monotonic()
    while waiting and time.monotonic() - began < patience:
        time.sleep(5)
        for person in list(waiting):
            entries, ok = settled(soak, person)
            if ok:
                waiting.remove(person)
                outcomes["stalled_then_ok"] += len(entries)
                soak.event("settled", person=person.name, after_s=round(time.monotonic() - began, 1))
    for person in waiting:
        entries, _ = settled(soak, person)
        outcomes["missing"] += person.institutions - len(entries)
        for entry in entries:
            outcomes[entry["status"] if entry["status"] != "ok" else "ok"] += 1
        soak.event("connection lost", person=person.name, entries=entries)
    return outcomes


def runner_env(tmp: Path) -> dict[str, str]:
    """``make run``'s environment for the soak: its own ports and data, two AS workers."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({
        "AGGREGATOR_PORT": str(reserve_port()),
        "AGGREGATOR_REDIS_PORT": str(reserve_port()),
        "SANDBOX_PORT": str(reserve_port()),
        "AGGREGATOR_DATA_DIR": str(tmp / "var"),
        "AGGREGATOR_PLUGINS": "sandbox",
        "AGGREGATOR_WORKERS": "2",
        "AGGREGATOR_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,
        "AGGREGATOR_TRUST_PROXY": "1",  # each newcomer signs up from their own address
        "AGGREGATOR_PASSWORD_HASHING": "argon2id-minimal",  # load on the AS, not on argon2
        "AGGREGATOR_LOG_LEVEL": "WARNING",
    })
    return env


def run(seconds: float = 150.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The soak run; returns its figures (the runner's log lines of note among them)."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        env = runner_env(Path(tmp))
        runner = start_runner(env, Path(tmp) / "runner.log")
        try:
            runner.wait_ready()
            bank_url = f"http://127.0.0.1:{env['SANDBOX_PORT']}"
            bank = SandboxBank(bank_url, CLIENT_ID, CLIENT_SECRET, "")
            admin = SandboxAdmin(bank_url)
            admin.set_faults(access_token_ttl=BANK_TOKEN_TTL)
            before = _refreshes(admin)
            soak = Soak(runner, env, bank, make_app(Server(runner.url)),  # type: ignore[arg-type]
                        stop_at=time.monotonic() + seconds)
            log(f"soak: {seconds:g} s against {runner.url}, bank tokens live {BANK_TOKEN_TTL} s")
            with counting(soak):
                threads = [threading.Thread(target=flows, args=(soak, n), daemon=True)
                           for n in range(FLOW_THREADS)]
                threads += [threading.Thread(target=poll, args=(soak, n), daemon=True)
                            for n in range(POLL_THREADS)]
                for thread in threads:
                    thread.start()
                chaos(soak, seconds)
                for thread in threads:
                    thread.join(max(1.0, soak.stop_at - time.monotonic()) + 30)
                loaded = soak.at()
                soak.runner.wait_ready(timeout=30)
                outcomes = check_everyone(soak)
            refreshes = _refreshes(admin) - before
            return _figures(soak, loaded, refreshes, outcomes)
        finally:
            runner.stop()


def _refreshes(admin: SandboxAdmin) -> int:
    return admin.stats()["token_requests"]["by_grant_type"].get("refresh_token", 0)


def _figures(soak: Soak, seconds: float, refreshes: int, outcomes: Counter) -> dict[str, Any]:
    statuses = {f"{server} {status}": n for (server, status), n in sorted(soak.statuses.items())}
    as_5xx = sum(n for (server, status), n in soak.statuses.items()
                 if server == "as" and status >= 500 and status != 503)
    lost = sum(n for outcome, n in outcomes.items() if outcome not in ("ok", "stalled_then_ok"))
    notable = [line for line in soak.runner.output().splitlines()
               if any(word in line for word in ("Traceback", "ERROR", "Error", "exited", "restart"))]
    return {
        "when": report.now(),
        "machine": report.machine(),
        "seconds_of_load": seconds,
        "bank_access_token_ttl": BANK_TOKEN_TTL,
        "people": len(soak.people),
        "flows_completed": len(soak.people),
        "flows_failed": sum(soak.failed_flows.values()),
        "flow_failures": dict(soak.failed_flows.most_common(10)),
        "registrations": sum(p.institutions for p in soak.people),
        "introspections": soak.introspections,
        "introspected_entries": dict(soak.entries),
        "upstream_refreshes": refreshes,
        "redis_kills": sum(e["event"] == "redis killed" for e in soak.events),
        "worker_kills": sum(e["event"] == "worker killed" for e in soak.events),
        "statuses": statuses,
        "as_503": soak.statuses["as", 503],
        "as_5xx_other_than_503": as_5xx,
        "no_answer": soak.statuses["as", 0],
        "final_check": dict(outcomes),
        "connections_stalled": outcomes["stalled_then_ok"],
        "connections_lost": lost,
        "met": as_5xx == 0 and lost == 0,
        "server_errors": soak.server_errors[:20],
        "events": soak.events,
        "runner_log_of_note": notable[-60:],
    }


def table(figures: dict[str, Any]) -> str:
    """The soak's figures as a plain-text table."""
    rows = [
        ("seconds of load", figures["seconds_of_load"]),
        ("flows completed / failed", f"{figures['flows_completed']} / {figures['flows_failed']}"),
        ("registrations linked", figures["registrations"]),
        ("introspections", figures["introspections"]),
        ("upstream refreshes (bank)", figures["upstream_refreshes"]),
        ("Redis kills / worker kills", f"{figures['redis_kills']} / {figures['worker_kills']}"),
        ("AS answers 503 (Redis down)", figures["as_503"]),
        ("AS answers 5xx other than 503", f"{figures['as_5xx_other_than_503']}  (target 0)"),
        ("AS requests without an answer", figures["no_answer"]),
        ("connections stalled, then ok", figures["connections_stalled"]),
        ("connections lost", f"{figures['connections_lost']}  (target 0)"),
    ]
    lines = [f"{name:<36}{value!s:>16}" for name, value in rows]
    lines.append("requests by server and status: " + ", ".join(
        f"{key}: {n}" for key, n in figures["statuses"].items()))
    lines.append(f"final check: {figures['final_check']}")
    return "\n".join(lines)
