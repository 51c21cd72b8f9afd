"""The audit trail: who received which upstream tokens, for people and for operators."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aggregator.introspection.audit import describe, recent_activity, record_release
from aggregator.introspection.cli import audit
from aggregator.store import audit as audit_store
from aggregator.store.audit import AuditEvent

AT = int(datetime(2026, 11, 22, 10, 31, tzinfo=UTC).timestamp())


def test_a_release_is_told_to_the_person_as_a_sentence(server, person):
    with server.app.app_context():
        record_release("grapher-id", "Grapher", person.id,
                       [("r1", "Bank of Astoria"), ("r2", "Monami Card")])
        lines = recent_activity(person.id)

    assert len(lines) == 1
    assert lines[0].startswith("Grapher read Bank of Astoria and Monami Card at ")
    assert lines[0].endswith(" UTC")


def test_sentences_name_one_or_many_institutions():
    one = AuditEvent(at=AT, client_id="c", client_name="Grapher", person_id="p",
                     registrations=(("r1", "Bank of Astoria"),))
    three = AuditEvent(at=AT, client_id="c", client_name="", person_id="p",
                       registrations=(("r1", "A"), ("r2", "B"), ("r3", "C")))

    assert describe(one) == "Grapher read Bank of Astoria at 2026-11-22 10:31 UTC"
    assert describe(three) == "c read A, B and C at 2026-11-22 10:31 UTC"


def test_nothing_is_recorded_when_nothing_was_released(server, person):
    with server.app.app_context():
        assert record_release("grapher-id", "Grapher", person.id, []) is None
        assert recent_activity(person.id) == []


def test_each_person_sees_only_their_own_events_newest_first(server, person):
    store = server.services.store
    other = store.people.create("ada", "not-a-real-hash")
    with server.app.app_context():
        record_release("c1", "Grapher", person.id, [("r1", "Bank of Astoria")])
        record_release("c2", "Budgeter", other.id, [("r9", "Monami Card")])
        record_release("c1", "Grapher", person.id, [("r2", "Lastish Fundco")])

        mine = recent_activity(person.id)

    assert [line.split(" at ")[0] for line in mine] == [
        "Grapher read Lastish Fundco", "Grapher read Bank of Astoria"]
    assert len(store.audit.recent(10)) == 3


def test_the_person_stream_is_capped(server, person, monkeypatch):
    monkeypatch.setattr(audit_store, "PERSON_CAP", 5)
    store = server.services.store
    with server.app.app_context():
        for n in range(300):
            record_release("c1", "Grapher", person.id, [(f"r{n}", "Bank of Astoria")])
    # approximate trimming keeps at most one macro node beyond the cap
    assert store.redis.xlen(f"audit:{{u:{person.id}}}") < 300


def test_operators_list_events_as_json_lines(server, person):
    with server.app.app_context():
        record_release("c1", "Grapher", person.id, [("r1", "Bank of Astoria")])
    runner = server.app.test_cli_runner()

    everyone = runner.invoke(audit, ["list", "--limit", "5"])
    nat = runner.invoke(audit, ["list", "--person", "nat"])
    nobody = runner.invoke(audit, ["list", "--person", "nobody"])

    assert everyone.exit_code == 0, everyone.output
    event = json.loads(everyone.output.splitlines()[0])
    assert event["client_name"] == "Grapher"
    assert event["registrations"] == [{"id": "r1", "institution": "Bank of Astoria"}]
    assert "access_token" not in everyone.output
    assert json.loads(nat.output) == event
    assert nobody.exit_code != 0 and "no person called 'nobody'" in nobody.output
