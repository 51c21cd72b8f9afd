"""``/metrics`` after the story: what an operator's Prometheus sees of introspections, releases,
upstream refreshes, single-flight waits and the refresher."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from aggregator.metrics import Metrics
from tests.fixtures.metrics import METRICS_TOKEN, scrape
from tests.introspection.apps import granted
from tests.introspection.crowd import at_once
from tests.introspection.test_refresher import start_refresher, wait_for
from tests.introspection.upstream import PLUGINS, link

FAMILIES = {
    "aggregator_http_requests", "aggregator_http_request_duration_seconds",
    "aggregator_introspections", "aggregator_upstream_tokens_released",
    "aggregator_upstream_refreshes", "aggregator_upstream_refresh_duration_seconds",
    "aggregator_single_flight_waits", "aggregator_single_flight_wait_duration_seconds",
    "aggregator_store_faults", "aggregator_store_retries",
    "aggregator_refresher_jobs_taken", "aggregator_refresher_jobs_done",
    "aggregator_refresher_jobs_running",
    "aggregator_event_sets_queued", "aggregator_event_pushes",
}
#: read from Redis at scrape time, not counted by a process
QUEUE_FAMILIES = {"aggregator_refresher_queue_jobs", "aggregator_refresher_alive"}


@pytest.fixture
def server(make_as):
    return make_as(AGGREGATOR_UPSTREAM_TIMEOUT="2", AGGREGATOR_TOKEN_FRESHNESS="60",
                   AGGREGATOR_METRICS_TOKEN=METRICS_TOKEN, plugins=PLUGINS)


def test_one_introspection_releasing_two_tokens_shows_in_every_family(server, person, banks):
    svc = server.services
    astoria = link(svc, person.id, banks("Bank of Astoria"))
    monami = link(svc, person.id, banks("Monami Card"))
    grapher, token = granted(svc, person.id, {astoria.id, monami.id})

    assert grapher.introspect(server.url, token).status_code == 200
    seen = scrape(server.url)

    assert seen.families >= FAMILIES | QUEUE_FAMILIES
    assert seen.value("aggregator_refresher_alive") == 0  # none runs: the requests refreshed
    assert seen.value("aggregator_refresher_queue_jobs", state="queued") == 0
    assert seen.value("aggregator_http_requests_total", endpoint="introspection.introspect",
                      status="200") == 1
    assert seen.value("aggregator_http_request_duration_seconds_count",
                      endpoint="introspection.introspect", status="200") == 1
    assert seen.value("aggregator_introspections_total", active="true") == 1
    assert seen.value("aggregator_upstream_tokens_released_total", provider="fakebank") == 2
    assert seen.value("aggregator_upstream_refreshes_total", provider="fakebank", outcome="ok") == 2
    assert seen.value("aggregator_upstream_refresh_duration_seconds_count",
                      provider="fakebank", outcome="ok") == 2

    # the same tokens again: released twice more, from the cache (no refresh)
    assert grapher.introspect(server.url, token).status_code == 200
    again = scrape(server.url)
    assert again.value("aggregator_upstream_tokens_released_total", provider="fakebank") == 4
    assert again.value("aggregator_upstream_refreshes_total", provider="fakebank", outcome="ok") == 2
    assert again.value("aggregator_introspections_total", active="true") == 2
    assert again.value("aggregator_http_requests_total", endpoint="introspection.introspect",
                       status="200") == 2
    assert again.value("aggregator_http_requests_total", endpoint="metrics.scrape", status="200") == 1


def test_an_unknown_token_and_a_refused_connection_are_counted_as_such(server, person, banks):
    svc = server.services
    bank = banks("Bank of Astoria")
    record = link(svc, person.id, bank)
    grapher, token = granted(svc, person.id, {record.id})
    bank.revoke_all()  # the bank no longer accepts the refresh token

    entry = grapher.introspect(server.url, token).json()["institutions"]["Bank of Astoria"]
    assert entry["status"] == "reauth_required"
    assert grapher.introspect(server.url, "not-a-token").json() == {"active": False}
    seen = scrape(server.url)

    assert seen.value("aggregator_upstream_refreshes_total", provider="fakebank",
                      outcome="reauth_required") == 1
    assert seen.value("aggregator_upstream_tokens_released_total", provider="fakebank") == 0
    assert seen.value("aggregator_introspections_total", active="true") == 1
    assert seen.value("aggregator_introspections_total", active="false") == 1


def test_many_introspections_at_once_make_one_refresh_and_the_others_wait(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks(latency_ms=300))
    grapher, token = granted(svc, person.id, {record.id})

    answers = at_once(5, lambda: grapher.introspect(server.url, token))
    assert all(a.json()["institutions"]["Bank of Astoria"]["status"] == "ok" for a in answers)
    seen = scrape(server.url)

    assert seen.value("aggregator_upstream_refreshes_total", provider="fakebank", outcome="ok") == 1
    waits = seen.value("aggregator_single_flight_waits_total", on="lease")
    assert 1 <= waits <= 4
    assert seen.value("aggregator_single_flight_wait_duration_seconds_count", on="lease") == waits


def test_with_a_refresher_the_request_waits_on_it_and_the_refresher_counts_its_job(
        server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher, token = granted(svc, person.id, {record.id})
    refresher = start_refresher(server)
    try:
        wait_for(svc.store.refresh_jobs.refresher_alive)
        entry = grapher.introspect(server.url, token).json()["institutions"]["Bank of Astoria"]
        assert entry["status"] == "ok"
        seen = scrape(server.url)
        assert seen.value("aggregator_single_flight_waits_total", on="refresher") == 1
        assert seen.value("aggregator_refresher_alive") == 1
        assert seen.value("aggregator_refresher_queue_jobs", state="pending") == 0
        assert seen.value("aggregator_upstream_refreshes_total", provider="fakebank", outcome="ok") == 0
        # the refresher is its own process in production; here its own app and registry
        counted = refresher.metrics.registry
        assert counted.get_sample_value("aggregator_refresher_jobs_taken_total") == 1
        assert counted.get_sample_value("aggregator_refresher_jobs_done_total", {"outcome": "ok"}) == 1
        assert counted.get_sample_value("aggregator_upstream_refreshes_total",
                                        {"provider": "fakebank", "outcome": "ok"}) == 1
        assert counted.get_sample_value("aggregator_refresher_jobs_running") == 0
    finally:
        refresher.stop()


def test_metrics_need_the_token(server):
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 401
    wrong = requests.get(f"{server.url}/metrics", headers={"Authorization": "Bearer wrong-token"},
                         timeout=10)
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert "aggregator_" not in wrong.text


def test_without_a_metrics_token_there_is_no_metrics_page(make_as):
    server = make_as()
    answer = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                          timeout=10)
    assert answer.status_code == 404


def test_every_family_is_documented_and_on_the_example_dashboard():
    docs = Path(__file__).resolve().parents[2] / "docs"
    operators = (docs / "operators.md").read_text()
    dashboard = (docs / "grafana-dashboard.json").read_text()
    names = {family.name for family in Metrics().registry.collect()}
    assert names == FAMILIES
    counters = {family.name for family in Metrics().registry.collect() if family.type == "counter"}
    for name in FAMILIES | QUEUE_FAMILIES:
        shown = name + ("_total" if name in counters else "")
        assert f"`{shown}`" in operators, shown
        assert shown in dashboard, shown
