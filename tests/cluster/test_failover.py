"""A cluster master dies (kill -9) under an introspection load: while its slots have no master
the AS answers 503 (never 500); once the replica is promoted it serves again without a restart,
and the rotated upstream refresh tokens it acknowledged before the kill are still there."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from aggregator.store import key_names
from aggregator.store.faults import store_fault
from tests.cluster.test_cluster_story import grapher_token
from tests.introspection.test_story import nat_with_two_banks
from tests.oauth.apps import make_app, person_id_of

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "cluster"
#: the load loop's bounds: before the kill, and at most this long after it
WARM_UP_S = 2.0
RECOVERY_LIMIT_S = 30.0


def test_a_master_dies_and_the_as_serves_again_after_promotion(server, sandbox_bank, redis_cluster):
    # every introspection refreshes both banks, and every refresh rotates their refresh tokens
    nat = nat_with_two_banks(server, sandbox_bank, rotate_refresh_tokens=True, access_token_ttl=30)
    person_id = person_id_of(server, nat)
    grapher = make_app(server)
    tokens = grapher_token(server, nat, grapher)
    victim = redis_cluster.master_of(key_names.person(person_id))

    def introspect() -> tuple[int, set[str]]:
        try:
            answer = grapher.post("/introspect", {"token": tokens["access_token"]})
        except requests.RequestException:
            return 0, set()
        statuses = ({e["status"] for e in answer.json().get("institutions", {}).values()}
                    if answer.status_code == 200 else set())
        return answer.status_code, statuses

    outcomes: list[tuple[float, int, set[str]]] = []
    started = time.monotonic()
    while time.monotonic() - started < WARM_UP_S:
        outcomes.append((time.monotonic(), *introspect()))
    assert all(code == 200 and statuses == {"ok"} for _, code, statuses in outcomes), outcomes
    acknowledged = len(outcomes)  # each one a rotation of both banks' refresh tokens
    store = server.services.store

    def upstream_secrets() -> list[dict]:
        return [store.registrations.secrets(r) for r in store.registrations.list(person_id)]

    before_kill = upstream_secrets()  # what the last acknowledged refreshes stored
    killed_at = time.monotonic()
    redis_cluster.kill(victim)
    recovered_at, kept = None, None
    while time.monotonic() - killed_at < RECOVERY_LIMIT_S:
        if kept is None:  # the first read the promoted replica answers, before any new refresh
            try:
                kept = upstream_secrets() == before_kill
            except Exception as exc:  # noqa: BLE001 - only a store fault is expected here
                assert store_fault(exc) is not None, exc
        at, code, statuses = time.monotonic(), *introspect()
        outcomes.append((at, code, statuses))
        if code == 200 and statuses == {"ok"}:
            recovered_at = at
            break
        time.sleep(0.05)  # bounded load while the cluster elects

    after = [(code, statuses) for at, code, statuses in outcomes if at >= killed_at]
    failed = [code for code, statuses in after if code != 200]
    degraded = [statuses for code, statuses in after if code == 200 and statuses != {"ok"}]
    figures = {
        "requests_before_kill": acknowledged,
        "requests_after_kill": len(after),
        "failed": len(failed),
        "failed_statuses": sorted(set(failed)),
        "degraded_200s": [sorted(s) for s in degraded],
        "seconds_to_recovery": None if recovered_at is None else round(recovered_at - killed_at, 2),
        "rotated_refresh_tokens_kept": kept,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failover.json").write_text(json.dumps(figures, indent=2))
    print("failover:", figures)

    assert recovered_at is not None, figures
    assert set(failed) <= {503}, figures  # never a 500 (nor a dropped connection)
    assert kept is not False, figures  # read back after promotion: the very secrets acknowledged
    # the rotations acknowledged before the kill survived it: a lost one would have made the
    # bank see a spent refresh token, revoke the grant, and the registration ask for re-consent
    for _ in range(3):
        code, statuses = introspect()
        assert code == 200 and statuses == {"ok"}, (code, statuses)
    assert {r.status for r in store.registrations.list(person_id)} == {"ok"}
