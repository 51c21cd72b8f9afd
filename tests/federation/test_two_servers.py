"""Two aggregators in one test: A with the sandbox bank, B with the federation plugin pointing
at A. Nat (one human, an account at each) links A's two institutions into B through the pages,
the Grapher at B is granted one of them and reads it at the bank; Nat revoking B at A shows at B.
"""

from __future__ import annotations

import time

import pytest
import requests

from aggregator.introspection.response import RECENT_SECONDS
from aggregator.testing.servers import reserve_port
from tests.federation.conftest import consent_at_a, register_downstream, start_downstream
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import DATA, App, allow, ask, make_app, person_id_of, signed_up


@pytest.fixture
def downstream(make_as, upstream, redis_url) -> LiveAS:
    """Aggregator B, registered at A as a client, on its own Redis database."""
    port = reserve_port()
    return start_downstream(make_as, upstream, redis_url, port,
                            register_downstream(upstream, f"http://127.0.0.1:{port}"))


def link_a_into_b(nat_at_b: PersonAgent, nat_at_a: PersonAgent) -> None:
    """At B: connect "Nat's aggregator"; at A: allow both institutions; back at B's callback."""
    chooser = nat_at_b.http.get(nat_at_b.url("/connections/new"))
    assert "Nat&#39;s aggregator" in chooser.text or "Nat's aggregator" in chooser.text
    start = nat_at_b.post_form("/connections/new", {"provider": "federation", "institution": "account"},
                               form_page="/connections/new")
    assert start.status_code in (302, 303), start.text
    assert start.headers["Location"].startswith(nat_at_a.base_url)  # A's authorization endpoint
    back = consent_at_a(nat_at_a, start.headers["Location"])
    done = nat_at_b.http.get(back.headers["Location"], allow_redirects=False)
    assert done.status_code in (302, 303), done.text


def registrations_at_b(downstream: LiveAS, nat_at_b: PersonAgent) -> dict[str, str]:
    """Institution name -> registration id at B."""
    records = downstream.services.store.registrations.list(person_id_of(downstream, nat_at_b))
    return {record.institution_name: record.id for record in records}


def astoria_granted_at_b(downstream: LiveAS, nat_at_a: PersonAgent) -> tuple[PersonAgent, App, dict]:
    """Nat at B with A's institutions linked, and the Grapher granted Bank of Astoria: Nat's
    agent at B, the Grapher, its token response."""
    nat_at_b = signed_up(downstream, "nat-b")
    link_a_into_b(nat_at_b, nat_at_a)
    grapher = make_app(downstream)
    consent, verifier = ask(downstream, grapher, nat_at_b, scope=f"openid {DATA}")
    astoria = registrations_at_b(downstream, nat_at_b)["Bank of Astoria"]
    return nat_at_b, grapher, allow(grapher, nat_at_b, consent, verifier, registrations=[astoria])


def test_the_grapher_at_b_reads_exactly_the_institution_it_was_granted(
        downstream, upstream, nat_at_a, sandbox_bank):
    nat_at_b = signed_up(downstream, "nat-b")  # the same human, their own account at B
    link_a_into_b(nat_at_b, nat_at_a)
    at_b = registrations_at_b(downstream, nat_at_b)
    assert set(at_b) == {"Bank of Astoria", "Monami Card"}
    page = nat_at_b.http.get(nat_at_b.url("/connections")).text
    assert page.count("status-ok") == 2

    grapher = make_app(downstream)
    consent, verifier = ask(downstream, grapher, nat_at_b, scope=f"openid {DATA}")
    tokens = allow(grapher, nat_at_b, consent, verifier, registrations=[at_b["Monami Card"]])
    body = grapher.post("/introspect", {"token": tokens["access_token"]}).json()

    assert body["active"] is True and list(body["institutions"]) == ["Monami Card"]
    entry = body["institutions"]["Monami Card"]
    assert entry["status"] == "ok" and entry["provider"] == "federation"
    assert entry["endpoint"].startswith(f"{sandbox_bank.url}/monami/users/")
    answer = requests.get(f"{entry['endpoint']}/accounts", timeout=10,
                          headers={"Authorization": f"{entry['token_type']} {entry['access_token']}"})
    assert answer.status_code == 200, answer.text
    assert {account["providerName"] for account in answer.json()["data"]} == {"Monami Card"}


def test_nat_revoking_b_at_a_shows_at_b_as_reauth_required(downstream, upstream, nat_at_a):
    nat_at_b, grapher, tokens = astoria_granted_at_b(downstream, nat_at_a)
    assert grapher.post("/introspect", {"token": tokens["access_token"]}).json()[
        "institutions"]["Bank of Astoria"]["status"] == "ok"

    # on A's dashboard, Nat revokes Aggregator B
    dashboard = nat_at_a.http.get(nat_at_a.url("/")).text
    assert "Aggregator B" in dashboard
    [grant] = upstream.services.store.grants.for_person(person_id_of(upstream, nat_at_a))
    revoked = nat_at_a.post_form(f"/apps/{grant.id}/revoke", {}, form_page="/")
    assert revoked.status_code in (200, 302, 303), revoked.text

    # B's client at A may not use client credentials, so B has no event stream there (the
    # fallback, docs/plugins.md): B's next status check (Nat's connections page asks A) marks
    # both registrations
    assert upstream.services.store.event_streams.get(grant.client_id) is None
    page = nat_at_b.http.get(nat_at_b.url("/connections"))
    assert page.status_code == 200 and page.text.count("status-reauth_required") == 2
    statuses = {r.institution_name: r.status for r in downstream.services.store.registrations.list(
        person_id_of(downstream, nat_at_b))}
    assert statuses == {"Bank of Astoria": "reauth_required", "Monami Card": "reauth_required"}
    time.sleep(RECENT_SECONDS + 0.1)  # B's workers reuse an all-ok answer for up to a second
    entry = grapher.post("/introspect", {"token": tokens["access_token"]}).json()[
        "institutions"]["Bank of Astoria"]
    assert entry["status"] == "reauth_required" and "access_token" not in entry and entry["error"]


def test_the_grapher_reporting_a_token_refused_after_the_revocation_learns_it_at_once(
        downstream, upstream, nat_at_a):
    nat_at_b, grapher, tokens = astoria_granted_at_b(downstream, nat_at_a)
    [grant] = upstream.services.store.grants.for_person(person_id_of(upstream, nat_at_a))
    nat_at_a.post_form(f"/apps/{grant.id}/revoke", {}, form_page="/")
    astoria = registrations_at_b(downstream, nat_at_b)["Bank of Astoria"]

    answer = grapher.post("/introspect", {"token": tokens["access_token"],
                                          "rejected_registration": astoria})
    entry = answer.json()["institutions"]["Bank of Astoria"]

    assert entry["status"] == "reauth_required" and "access_token" not in entry
