"""Introspection under gunicorn, as in production, in one run:

(a) throughput, p50/p99 latency and server CPU per request, loaded by ``wrk`` (one thread, 16
    connections), alternated A B A B in one run: panva's node oidc-provider introspecting a
    client_credentials token (the peer, ``bench/peer.py``); this product introspecting a
    client_credentials token (plain) and a person's token with 4 registrations whose tokens are
    fresh; and for reference the same two with the worker cache off
    (``AGGREGATOR_LOCAL_CACHE=off``) and a minimal Flask endpoint doing one Redis GET (the floor,
    same gunicorn settings). Targets: plain / peer >= 1.0, 4 institutions / peer >= 0.75;
(b) latency with 20 registrations all needing a refresh from a 100 ms upstream, against an
    introspection needing a single refresh;
(c) upstream refreshes caused by 50 simultaneous introspections of one expired registration;
(d) (a)'s fresh introspection on an append-only Redis under ``appendfsync everysec`` and under
    ``always``, alternated A B A B: what fsync at every write costs.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aggregator import create_app
from aggregator.crypto import KeyRing
from aggregator.oauth.clients import register_client
from aggregator.services import Services
from aggregator.testing.servers import reserve_port
from aggregator.upstream.contract import Institution, LinkedInstitution, UpstreamToken
from bench import report, upstream, wrk
from bench.cluster import Cluster, Server
from bench.load import Request, Stats, burst, hammer, repeat, send
from bench.peer import Peer
from bench.wrk import WrkStats
from config import load_settings

DATA = "accounts:read balances:read transactions:read"
LATENCY_MS = 100
CONNECTIONS = 16  # wrk's keep-alive connections in (a), as in the issue's measurements
TARGET_PLAIN, TARGET_FOUR = 1.0, 0.75  # throughput ratios to the peer
FSYNC = ("everysec", "always")  # appendfsync policies compared in (d), in this order


@dataclass(frozen=True)
class Seeded:
    """A person's token at the Grapher and how many institutions it should list."""

    request: Request
    institutions: int

    def check(self, status: int, body: bytes) -> bool:
        return status == 200 and body.count(b'"status":"ok"') == self.institutions


def _seed(svc: Services, bank_url: str, app_auth: str, client_id: str, username: str, count: int,
          *, cached_for: int | None) -> Seeded:
    """A person with ``count`` registrations granted to the app; cached tokens valid
    ``cached_for`` seconds (None: no cached token)."""
    store = svc.store
    person = store.people.create(username, "bench-not-a-password-hash")
    ids = set()
    for n in range(count):
        token = None
        if cached_for is not None:
            token = UpstreamToken(f"at-seeded-{username}-{n}", int(time.time()) + cached_for)
        record = store.registrations.save_linked(person.id, "benchbank", LinkedInstitution(
            Institution(f"bank-{n}", f"Bank {n}"), external_id=f"{username}-{n}",
            endpoint=f"{bank_url}/users/{username}-{n}",
            secrets={"refresh_token": f"rt-{username}-{n}"}, token=token))
        ids.add(record.id)
    grant = store.grants.create(client_id, person.id, ["openid", *DATA.split()],
                                {rid: frozenset(DATA.split()) for rid in ids})
    token, _ = store.tokens.issue_access_token(client_id=client_id, person_id=person.id,
                                               grant_id=grant.id, scope=grant.scope, ttl=3600,
                                               pairs=grant.pairs)
    body = urlencode({"token": token}).encode()
    headers = {"Authorization": app_auth, "Content-Type": "application/x-www-form-urlencoded"}
    return Seeded(Request("POST", "/introspect", body, headers), count)


@dataclass
class Measured:
    """A load run and the server CPU it cost."""

    stats: Stats | WrkStats
    cpu_seconds: float

    def as_dict(self) -> dict[str, Any]:
        per = self.cpu_seconds / self.stats.count * 1000 if self.stats.count else None
        return {**self.stats.as_dict(), "server_cpu_ms_per_request": round(per, 3) if per else None}


def _measure(server: Server, run: Callable[[], Stats | WrkStats]) -> Measured:
    before = server.cpu_seconds()
    stats = run()
    return Measured(stats, server.cpu_seconds() - before)


def _interleaved(runs: dict[str, tuple[Server, Callable[[float], Stats | WrkStats]]],
                 seconds: float,
                 rounds: int = 3) -> dict[str, Measured]:
    """Alternate the runs in ``rounds`` slices, so drifting background load hits them alike."""
    totals: dict[str, Measured] = {}
    for _ in range(rounds):
        for name, (server, run) in runs.items():
            part = _measure(server, lambda run=run: run(seconds / rounds))
            if name in totals:
                total = totals[name]
                total.stats = total.stats.merged(part.stats)
                total.cpu_seconds += part.cpu_seconds
            else:
                totals[name] = part
    return totals


@dataclass(frozen=True)
class Deployment:
    """An AS's environment on one Redis, its Grapher registered; ``seed`` adds people to it."""

    environ: dict[str, str]
    port: int
    svc: Services
    seed: Callable[..., Seeded]
    #: a client_credentials client's Basic credentials
    plain_auth: str


def _deploy(redis_url: str, bank_url: str, site: Path, data_dir: Path,
            **extra: str) -> Deployment:
    port = reserve_port()
    environ = {
        **os.environ,
        **extra,
        "PYTHONPATH": str(site),
        "REDIS_URL": redis_url,
        "AGGREGATOR_ISSUER": f"http://127.0.0.1:{port}",
        "AGGREGATOR_DATA_DIR": str(data_dir),
        "AGGREGATOR_ENCRYPTION_KEYS": KeyRing.new_key_item(),
        "AGGREGATOR_PLUGINS": "benchbank",
        "BENCHBANK_URL": bank_url,
    }
    svc: Services = create_app(environ).extensions["aggregator"]
    issued = register_client(svc, {
        "client_name": "Grapher", "redirect_uris": ["https://grapher.example/cb"],
        "grant_types": ["authorization_code"], "scope": f"openid {DATA}"})
    machine = register_client(svc, {
        "client_name": "Plain", "grant_types": ["client_credentials"], "scope": DATA})
    return Deployment(environ, port, svc, lambda *a, **k: _seed(
        svc, bank_url, _basic(issued.client.client_id, issued.client_secret),
        issued.client.client_id, *a, **k),
        _basic(machine.client.client_id, machine.client_secret))


def _basic(client_id: str, secret: str | None) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _plain_token(server_url: str, auth: str) -> Request:
    """Introspection of a client_credentials token issued over HTTP by ``server_url``."""
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    status, body = send(server_url, Request(
        "POST", "/token", urlencode({"grant_type": "client_credentials"}).encode(), headers))
    if status != 200:
        raise RuntimeError(f"client_credentials failed: {status} {body[:200]!r}")
    token = json.loads(body)["access_token"]
    return Request("POST", "/introspect", urlencode({"token": token}).encode(), headers)


def run(seconds: float = 6.0) -> dict[str, Any]:
    """Run the four phases; returns the figures (also printed and written by ``main``)."""
    defaults = load_settings({})
    workers, threads = defaults.workers, defaults.threads
    if not wrk.available():
        raise RuntimeError("wrk is not installed: `make bench` installs it (Debian package wrk)")
    with (tempfile.TemporaryDirectory(prefix="bench-") as tmp, Cluster(Path(tmp)) as cluster,
          ExitStack() as stack):
        site = upstream.install(Path(tmp) / "site")
        sys.path.insert(0, str(site))
        redis = cluster.redis()
        bank = cluster.gunicorn("bench.upstream:app", dict(os.environ), workers=1, threads=64,
                                ready_path="/stats")
        main = _deploy(redis.url, bank.url, site, Path(tmp) / "as")
        svc, environ, port, seed = main.svc, main.environ, main.port, main.seed
        four = seed("four", 4, cached_for=3600)
        twenty = seed("twenty", 20, cached_for=None)
        one = seed("one", 1, cached_for=None)
        stampede = seed("stampede", 1, cached_for=30)  # inside the freshness window: expired
        unknown = replace(four.request, body=urlencode({"token": "not-a-token"}).encode())
        svc.store.redis.set("bench:floor", "ok")

        server = cluster.gunicorn("wsgi:app", environ, workers=workers, threads=threads, port=port,
                                  ready_path="/readyz")
        # the same AS without its worker cache (AGGREGATOR_LOCAL_CACHE=off), on the same Redis
        uncached = cluster.gunicorn("wsgi:app", {**environ, "AGGREGATOR_LOCAL_CACHE": "off"},
                                    workers=workers, threads=threads, ready_path="/readyz")
        floor = cluster.gunicorn("bench.floor:app", {**os.environ, "REDIS_URL": redis.url},
                                 workers=workers, threads=threads, ready_path="/floor")

        # (a) the peer, a plain token and fresh tokens (and, for reference, the floor and an
        # unknown token: client authentication and token lookup only), all loaded by wrk
        clients = threads
        peer = stack.enter_context(Peer(reserve_port(), Path(tmp) / "peer.log"))
        plain = _plain_token(server.url, main.plain_auth)
        four_ok = '"status":"ok"'

        def load(target: Server, request: Request, needle: str) -> Callable[[float], WrkStats]:
            return lambda t: wrk.hammer(target.url, request, connections=CONNECTIONS, seconds=t,
                                        expect_in_body=needle)

        a = _interleaved({
            "peer": (peer.server, load(peer.server, peer.introspection, '"active":true')),
            "plain": (server, load(server, plain, '"active":true')),
            "fresh": (server, load(server, four.request, four_ok)),
            "plain_off": (uncached, load(uncached, plain, '"active":true')),
            "fresh_off": (uncached, load(uncached, four.request, four_ok)),
            "floor": (floor, load(floor, Request("GET", "/floor"), '"value":"ok"')),
            "unknown": (server, load(server, unknown, '{"active":false}')),
        }, seconds)

        # (d) the same as "fresh" on an append-only Redis, fsync once a second or at every write,
        # alternated A B A B
        fsync = {}
        for policy in FSYNC:
            on = _deploy(cluster.redis(appendfsync=policy).url, bank.url, site, Path(tmp) / policy)
            person = on.seed("four", 4, cached_for=3600)
            fsync[policy] = (cluster.gunicorn("wsgi:app", on.environ, workers=workers, threads=threads,
                                              port=on.port, ready_path="/readyz"), person)
        d = _interleaved({policy: (server, lambda t, server=server, person=person: hammer(
            server.url, person.request, threads=clients, seconds=t, check=person.check))
            for policy, (server, person) in fsync.items()}, seconds, rounds=2)

        # (e) the same as "fresh" with the AS on a 3-master Redis Cluster (3 replicas), against
        # the one node of (a), alternated A B A B
        local = cluster.redis_cluster()
        on_cluster = _deploy(local.url, bank.url, site, Path(tmp) / "cluster-as", REDIS_CLUSTER="true")
        spread = on_cluster.seed("four", 4, cached_for=3600)
        clustered = cluster.gunicorn("wsgi:app", on_cluster.environ, workers=workers, threads=threads,
                                     port=on_cluster.port, ready_path="/readyz")
        e = _interleaved({
            "one node": (server, lambda t: hammer(server.url, four.request, threads=clients, seconds=t,
                                                  check=four.check)),
            "cluster": (clustered, lambda t: hammer(clustered.url, spread.request, threads=clients,
                                                    seconds=t, check=spread.check)),
        }, seconds, rounds=2)

        # (b) every token must be refreshed, upstream answers in 100 ms
        upstream.set_faults(bank.url, latency_ms=LATENCY_MS, access_token_ttl=30)
        repeat(server.url, one.request, times=2, check=one.check)  # warm up the refresh path
        single = repeat(server.url, one.request, times=15, check=one.check)
        many = repeat(server.url, twenty.request, times=15, check=twenty.check)

        # (c) 50 introspections of one expired registration at once
        upstream.set_faults(bank.url, latency_ms=LATENCY_MS, access_token_ttl=3600)
        before = upstream.refreshes(bank.url)
        crowd = burst(server.url, stampede.request, count=50, check=stampede.check)
        calls = upstream.refreshes(bank.url) - before

    return _figures(workers, threads, clients, a, single, many, crowd, calls, d, e)


def _figures(workers: int, threads: int, clients: int, a: dict[str, Measured], single: Stats,
             many: Stats, crowd: Stats, calls: int, d: dict[str, Measured],
             e: dict[str, Measured]) -> dict[str, Any]:
    peer = a["peer"].stats.throughput

    def to_peer(name: str) -> float:
        return round(a[name].stats.throughput / peer, 3) if peer else 0.0

    ratio_plain, ratio_four = to_peer("plain"), to_peer("fresh")
    everysec, always = (d[policy].stats for policy in FSYNC)
    ratio_d = always.throughput / everysec.throughput if everysec.throughput else 0.0
    ratio_b = many.percentile(50) / single.percentile(50) if single.latencies else float("inf")
    node, spread = e["one node"].stats, e["cluster"].stats
    ratio_e = spread.throughput / node.throughput if node.throughput else 0.0
    return {
        "when": report.now(),
        "machine": report.machine(),
        "gunicorn": {"worker_class": "gthread", "workers": workers, "threads": threads},
        "a_peer": {
            "load": f"wrk -t1 -c{CONNECTIONS}",
            "peer_oidc_provider_plain": a["peer"].as_dict(),
            "introspection_plain": a["plain"].as_dict(),
            "introspection_4_fresh": a["fresh"].as_dict(),
            "introspection_plain_cache_off": a["plain_off"].as_dict(),
            "introspection_4_fresh_cache_off": a["fresh_off"].as_dict(),
            "floor_one_redis_get": a["floor"].as_dict(),
            "introspection_unknown_token": a["unknown"].as_dict(),
            "plain_to_peer": ratio_plain,
            "four_to_peer": ratio_four,
            "floor_to_peer": to_peer("floor"),
            "plain_cache_off_to_peer": to_peer("plain_off"),
            "four_cache_off_to_peer": to_peer("fresh_off"),
            "target": f"plain >= {TARGET_PLAIN}, 4 institutions >= {TARGET_FOUR}",
            "met": (ratio_plain >= TARGET_PLAIN and ratio_four >= TARGET_FOUR
                    and not any(a[name].stats.errors for name in ("plain", "fresh"))),
        },
        "b_concurrent_refresh": {
            "upstream_latency_ms": LATENCY_MS,
            "one_refresh": single.as_dict(),
            "twenty_refreshes": many.as_dict(),
            "p50_ratio": round(ratio_b, 3),
            "target": "< 1.5",
            "met": ratio_b < 1.5 and many.errors == 0,
        },
        "c_single_flight": {
            "simultaneous_introspections": crowd.count + crowd.errors,
            "answered_ok": crowd.count,
            "upstream_refreshes": calls,
            "p50_ms": round(crowd.percentile(50) * 1000, 1),
            "max_ms": round(max(crowd.latencies, default=0) * 1000, 1),
            "target": "== 1",
            "met": calls == 1 and crowd.errors == 0,
        },
        "d_fsync": {
            "load_threads": clients,
            "introspection_4_fresh_everysec": d["everysec"].as_dict(),
            "introspection_4_fresh_always": d["always"].as_dict(),
            "throughput_ratio_always_to_everysec": round(ratio_d, 3),
        },
        "e_cluster": {
            "load_threads": clients,
            "introspection_4_fresh_one_node": e["one node"].as_dict(),
            "introspection_4_fresh_3_master_cluster": e["cluster"].as_dict(),
            "throughput_ratio_cluster_to_one_node": round(ratio_e, 3),
        },
    }


def table(figures: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    a, b, c = figures["a_peer"], figures["b_concurrent_refresh"], figures["c_single_flight"]
    one, twenty = b["one_refresh"], b["twenty_refreshes"]
    d, e = figures["d_fsync"], figures["e_cluster"]
    g = figures["gunicorn"]

    def row(name: str, m: dict[str, Any]) -> str:
        cpu = m.get("server_cpu_ms_per_request")
        return (f"{name:<44}{m['throughput_rps']:>9}{m['p50_ms']:>9}{m['p99_ms']:>9}"
                f"{'' if cpu is None else cpu:>12}{m['errors']:>8}")

    def verdict(name: str, value: Any, goal: str, met: bool) -> str:
        return f"{name:<44}{value!s:>9}{goal:>9}{'ok' if met else 'MISSED':>10}"

    return "\n".join([
        f"gunicorn gthread {g['workers']} workers x {g['threads']} threads; "
        f"{figures['machine']['cpus']} CPUs, load average {figures['machine']['load_average']}; "
        f"(a) loaded by {a['load']}, the others by {figures['e_cluster']['load_threads']} Python "
        "threads",
        "",
        f"{'measure':<44}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/req':>12}{'errors':>8}",
        row("(a) peer: oidc-provider, plain token", a["peer_oidc_provider_plain"]),
        row("(a) introspect, plain token", a["introspection_plain"]),
        row("(a) introspect, 4 fresh tokens", a["introspection_4_fresh"]),
        row("    (ref.) introspect, plain, cache off", a["introspection_plain_cache_off"]),
        row("    (ref.) introspect, 4 fresh, cache off", a["introspection_4_fresh_cache_off"]),
        row("    (ref.) floor: Flask + one Redis GET", a["floor_one_redis_get"]),
        row("    (ref.) introspect, unknown token", a["introspection_unknown_token"]),
        row(f"(b) introspect, 1 refresh at {b['upstream_latency_ms']} ms", one),
        row(f"(b) introspect, 20 refreshes at {b['upstream_latency_ms']} ms", twenty),
        f"{'(c) ' + str(c['simultaneous_introspections']) + ' at once, one expired registration':<44}"
        f"{'':>9}{c['p50_ms']:>9}{c['max_ms']:>9}{'':>12}"
        f"{c['simultaneous_introspections'] - c['answered_ok']:>8}",
        row("(d) 4 fresh, appendfsync everysec", d["introspection_4_fresh_everysec"]),
        row("(d) 4 fresh, appendfsync always", d["introspection_4_fresh_always"]),
        row("(e) 4 fresh, one Redis node", e["introspection_4_fresh_one_node"]),
        row("(e) 4 fresh, 3-master Redis Cluster", e["introspection_4_fresh_3_master_cluster"]),
        "",
        f"{'target':<44}{'value':>9}{'goal':>9}",
        verdict("(a) plain / peer, throughput", a["plain_to_peer"], f">= {TARGET_PLAIN}",
                a["plain_to_peer"] >= TARGET_PLAIN),
        verdict("(a) 4 institutions / peer, throughput", a["four_to_peer"], f">= {TARGET_FOUR}",
                a["four_to_peer"] >= TARGET_FOUR),
        f"{'    (ref.) floor / peer, throughput':<44}{a['floor_to_peer']!s:>9}",
        f"{'    (ref.) plain, cache off / peer':<44}{a['plain_cache_off_to_peer']!s:>9}",
        f"{'    (ref.) 4 institutions, cache off / peer':<44}{a['four_cache_off_to_peer']!s:>9}",
        verdict("(b) 20 refreshes / 1 refresh, p50 latency", b["p50_ratio"], b["target"], b["met"]),
        verdict("(c) upstream refreshes for 50 at once", c["upstream_refreshes"], c["target"],
                c["met"]),
        f"{'(d) always / everysec, throughput':<44}{d['throughput_ratio_always_to_everysec']!s:>9}",
        f"{'(e) cluster / one node, throughput':<44}{e['throughput_ratio_cluster_to_one_node']!s:>9}",
    ])
