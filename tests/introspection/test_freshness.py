"""Fresh upstream tokens: caching, concurrent refresh, timeouts, single-flight, rotation."""

from __future__ import annotations

import time

import requests

from aggregator.introspection.freshness import FreshTokens
from aggregator.store import key_names
from aggregator.upstream.contract import DATA_SCOPES
from tests.introspection.crowd import at_once
from tests.introspection.upstream import link

SCOPES = frozenset(DATA_SCOPES)


def fresh_tokens(server) -> FreshTokens:
    return server.services.fresh_tokens


def collect(server, person_id: str, records) -> dict:
    """Outcomes for ``records``, each wanted for all data scopes."""
    return fresh_tokens(server).collect(person_id, [(record, SCOPES) for record in records])


def accounts(record, outcome) -> requests.Response:
    return requests.get(f"{record.endpoint}/accounts", timeout=5,
                        headers={"Authorization": f"Bearer {outcome.token.access_token}"})


def test_a_refreshed_token_works_at_the_bank_and_is_reused_while_fresh(server, person, banks):
    bank = banks()
    record = link(server.services, person.id, bank)

    first = collect(server, person.id, [record])[record.id]
    again = collect(server, person.id, [record])[record.id]

    assert first.status == "ok"
    assert accounts(record, first).status_code == 200
    assert again.token == first.token
    assert bank.refreshes == 1
    assert first.token.expires_at - time.time() >= 60


def test_a_token_about_to_expire_is_refreshed(server, person, banks):
    bank = banks(access_token_ttl=30)  # shorter than the 60 s freshness the AS promises
    record = link(server.services, person.id, bank)

    first = collect(server, person.id, [record])[record.id]
    second = collect(server, person.id, [record])[record.id]

    assert bank.refreshes == 2
    assert second.token.access_token != first.token.access_token
    assert accounts(record, second).status_code == 200


def test_cached_tokens_are_encrypted_at_rest(server, person, banks):
    record = link(server.services, person.id, banks())
    outcome = collect(server, person.id, [record])[record.id]

    client = server.services.store.redis
    for key in client.scan_iter("*"):
        if client.type(key) == b"string":
            assert outcome.token.access_token.encode() not in client.get(key)


def test_refreshes_of_different_banks_run_concurrently(server, person, banks):
    astoria = banks("Bank of Astoria", latency_ms=300)
    monami = banks("Monami Card", latency_ms=300)
    records = [link(server.services, person.id, astoria), link(server.services, person.id, monami)]

    started = time.monotonic()
    outcomes = collect(server, person.id, records)
    elapsed = time.monotonic() - started

    assert {o.status for o in outcomes.values()} == {"ok"}
    assert elapsed < 0.5, f"two 300 ms refreshes took {elapsed:.3f} s: they ran one after the other"


def test_many_concurrent_requests_cause_one_upstream_refresh(server, person, banks):
    bank = banks(latency_ms=200)
    record = link(server.services, person.id, bank)

    results = at_once(20, lambda: collect(server, person.id, [record])[record.id])

    assert bank.refreshes == 1
    assert {r.status for r in results} == {"ok"}
    assert len({r.token.access_token for r in results}) == 1


def test_a_failing_bank_marks_its_entry_and_spares_the_others(server, person, banks):
    good = link(server.services, person.id, banks("Bank of Astoria"))
    bad_bank = banks("Monami Card", fail=True)
    bad = link(server.services, person.id, bad_bank)

    outcomes = collect(server, person.id, [good, bad])

    assert outcomes[good.id].status == "ok"
    assert outcomes[bad.id].status == "error"
    assert outcomes[bad.id].token is None
    assert "temporarily unavailable" in outcomes[bad.id].error
    # a transient failure does not change what the person sees about the registration
    assert server.services.store.registrations.get(person.id, bad.id).status == "ok"


def test_a_hanging_bank_times_out_while_the_others_are_returned(server, person, banks):
    good = link(server.services, person.id, banks("Bank of Astoria", latency_ms=100))
    hung = link(server.services, person.id, banks("Monami Card", latency_ms=5000))

    started = time.monotonic()
    outcomes = collect(server, person.id, [good, hung])
    elapsed = time.monotonic() - started

    assert outcomes[good.id].status == "ok"
    assert outcomes[hung.id].status == "error"
    assert "did not answer within 1 seconds" in outcomes[hung.id].error
    assert 0.9 < elapsed < 1.5


def test_a_refused_grant_needs_the_person_and_is_not_retried(server, person, banks):
    bank = banks()
    record = link(server.services, person.id, bank)
    bank.revoke_all()

    first = collect(server, person.id, [record])[record.id]
    stored = server.services.store.registrations.get(person.id, record.id)
    second = collect(server, person.id, [stored])[record.id]

    assert first.status == "reauth_required"
    assert stored.status == "reauth_required"
    assert second.status == "reauth_required" and second.error == first.error
    assert bank.refreshes == 1


def test_waiters_share_the_holders_failure_instead_of_retrying(server, person, banks):
    bank = banks(latency_ms=200, fail=True)
    record = link(server.services, person.id, bank)

    results = at_once(10, lambda: collect(server, person.id, [record])[record.id])

    assert bank.refreshes == 1
    assert {r.status for r in results} == {"error"}


def test_a_rotated_refresh_token_survives_a_crash_before_the_response(server, person, banks,
                                                                      monkeypatch):
    bank = banks(rotate_refresh_tokens=True, access_token_ttl=30)
    record = link(server.services, person.id, bank)
    registrations = server.services.store.registrations
    persist = registrations.store_refreshed

    def persist_then_crash(*args, **kwargs):
        persist(*args, **kwargs)
        raise SystemError("worker died before answering")

    # The worker refreshes (the bank rotates the refresh token), persists, and dies.
    monkeypatch.setattr(registrations, "store_refreshed", persist_then_crash)
    crashed = collect(server, person.id, [record])[record.id]
    monkeypatch.undo()

    after = collect(server, person.id, [record])[record.id]

    assert crashed.status == "error"
    assert after.status == "ok"
    assert accounts(record, after).status_code == 200
    assert bank.refreshes == 2
    assert registrations.get(person.id, record.id).status == "ok"


def test_a_removed_holder_lease_lets_the_next_request_refresh(server, person, banks):
    bank = banks()
    record = link(server.services, person.id, bank)
    tokens = fresh_tokens(server)
    abandoned = tokens.locks.lease(person.id, record.id)
    assert abandoned.acquire()
    tokens.locks.keeper.drop(abandoned)  # as if its process had died: nobody extends it
    server.services.store.redis.pexpire(key_names.registration_lock(person.id, record.id), 300)

    outcome = tokens.collect(person.id, [(record, SCOPES)])[record.id]

    assert outcome.status == "ok"
    assert bank.refreshes == 1


def test_registrations_that_need_the_person_are_not_sent_upstream(server, person, banks):
    bank = banks()
    store = server.services.store.registrations
    expired = link(server.services, person.id, bank)
    store.set_status(expired, "expired", "The consent ended on 1 May.")
    expired = store.get(person.id, expired.id)

    outcome = collect(server, person.id, [expired])[expired.id]

    assert (outcome.status, outcome.error) == ("expired", "The consent ended on 1 May.")
    assert bank.refreshes == 0
