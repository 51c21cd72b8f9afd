"""Delivery that loses nothing: retries with backoff, a failing stream held and resumed, a
killed worker's deliveries taken over, and poll delivery (RFC 8936)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aggregator.events.cli import events
from aggregator.events.types import SESSION_REVOKED, VERIFICATION
from tests.events.conftest import (
    events_app,
    events_token,
    push_stream,
    shared_with_app,
    stream_call,
    verified,
)
from tests.fixtures.metrics import METRICS_TOKEN, scrape
from tests.oauth.apps import INITIAL_ACCESS_TOKEN

ROOT = Path(__file__).resolve().parents[2]


def verify(server, token: str, stream_id: str, state: str) -> None:
    answer = stream_call(server, token, "POST", "/ssf/verify", body={"stream_id": stream_id,
                                                                     "state": state})
    assert answer.status_code == 204, answer.text


def test_an_endpoint_failing_three_times_then_answering_gets_the_set_exactly_once(
        make_as, receiver, delivery_worker):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN,
                     AGGREGATOR_METRICS_TOKEN=METRICS_TOKEN)
    app = events_app(server)
    token, stream = push_stream(server, app, receiver.url)
    receiver.fail_first = 3
    delivery_worker(server, base_delay=0.05)

    verify(server, token, stream["stream_id"], "s-1")
    (signed,) = receiver.wait_for(1, timeout=5)
    time.sleep(0.5)  # a duplicate would come now
    assert receiver.requests_seen == 4 and len(receiver.accepted) == 1
    claims = verified(server, signed)[1]
    assert claims["events"] == {VERIFICATION: {"state": "s-1"}}
    assert claims["sub_id"] == {"format": "opaque", "id": stream["stream_id"]}
    seen = scrape(server.url)
    assert seen.value("aggregator_event_pushes_total", outcome="retry") == 3
    assert seen.value("aggregator_event_pushes_total", outcome="delivered") == 1


def test_a_stream_whose_deliveries_keep_failing_is_paused_held_and_resumed(
        make_as, receiver, delivery_worker):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = events_app(server)
    token, stream = push_stream(server, app, receiver.url)
    receiver.fail_first = 1000
    delivery_worker(server, base_delay=0.01, max_attempts=3)

    verify(server, token, stream["stream_id"], "held")
    deadline = time.monotonic() + 5
    status = {}
    while time.monotonic() < deadline:
        status = stream_call(server, token, "GET", "/ssf/status",
                             params={"stream_id": stream["stream_id"]}).json()
        if status["status"] == "paused":
            break
        time.sleep(0.05)
    assert status["status"] == "paused" and "failed 3 times" in status["reason"], status
    assert receiver.requests_seen == 3
    listed = server.app.test_cli_runner().invoke(events, ["status", "--failing"])
    assert listed.exit_code == 0, listed.output
    assert app.client_id in listed.output and '"held": 1' in listed.output

    receiver.fail_first = 0
    enabled = stream_call(server, token, "POST", "/ssf/status",
                          body={"stream_id": stream["stream_id"], "status": "enabled"})
    assert enabled.status_code == 200 and enabled.json()["status"] == "enabled"
    (signed,) = receiver.wait_for(1, timeout=5)
    assert verified(server, signed)[1]["events"] == {VERIFICATION: {"state": "held"}}
    listed = server.app.test_cli_runner().invoke(events, ["status", "--failing"])
    assert app.client_id not in listed.output


def test_killing_the_delivery_worker_mid_way_loses_no_event(make_as, redis_url, receiver):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = events_app(server)
    token, stream = push_stream(server, app, receiver.url)
    receiver.delay = 1.5  # every push is in flight for a while
    env = {**os.environ, "REDIS_URL": redis_url, "AGGREGATOR_ISSUER": server.url,
           "AGGREGATOR_DATA_DIR": str(server.services.settings.data_dir),
           "AGGREGATOR_PLUGINS": "", "AGGREGATOR_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}

    def worker() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "aggregator.events.delivery"], env=env,
                                cwd=ROOT)

    first = worker()
    try:
        for n in range(5):
            verify(server, token, stream["stream_id"], f"k-{n}")
        deadline = time.monotonic() + 15
        while receiver.requests_seen == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.requests_seen > 0, "the worker never pushed"
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        delivered_before = len(receiver.accepted)
        assert delivered_before < 5, "the kill came too late to test anything"
        receiver.delay = 0
        second = worker()
        try:
            receiver.wait_for(5 + delivered_before, timeout=20)
            # the receiver de-duplicates by jti (RFC 8417 §2.2): five events, none lost
            by_jti = {claims["jti"]: claims for claims in
                      (verified(server, signed)[1] for signed in receiver.accepted)}
            states = sorted(claims["events"][VERIFICATION]["state"] for claims in by_jti.values())
            assert states == [f"k-{n}" for n in range(5)]
        finally:
            second.terminate()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()


def test_poll_delivery_hands_out_sets_until_acknowledged(make_as, delivery_worker):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    agent, app, tokens = shared_with_app(server, "poppy")
    grant_id = tokens["grant_id"]
    token = events_token(app)
    created = stream_call(server, token, "POST", body={"delivery": {"method": "urn:ietf:rfc:8936"}})
    assert created.status_code == 201, created.text
    assert created.json()["delivery"]["endpoint_url"] == f"{server.url}/ssf/poll"
    delivery_worker(server)
    empty = stream_call(server, token, "POST", "/ssf/poll", body={"returnImmediately": True})
    assert empty.status_code == 200 and empty.json() == {"sets": {}, "moreAvailable": False}

    agent.post_form(f"/apps/{grant_id}/revoke", {}, form_page="/")
    polled = stream_call(server, token, "POST", "/ssf/poll", body={"maxEvents": 5})  # long poll
    assert polled.status_code == 200, polled.text
    (jti, signed), = polled.json()["sets"].items()
    claims = verified(server, signed)[1]
    assert claims["jti"] == jti and SESSION_REVOKED in claims["events"]
    again = stream_call(server, token, "POST", "/ssf/poll", body={"returnImmediately": True})
    assert list(again.json()["sets"]) == [jti], "unacknowledged: handed out again"
    acked = stream_call(server, token, "POST", "/ssf/poll",
                        body={"ack": [jti], "returnImmediately": True})
    assert acked.json() == {"sets": {}, "moreAvailable": False}


def test_pausing_holds_sets_and_switching_delivery_method_loses_none(make_as, receiver,
                                                                     delivery_worker):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = events_app(server)
    token, stream = push_stream(server, app, receiver.url)
    stream_id = stream["stream_id"]
    delivery_worker(server)

    paused = stream_call(server, token, "POST", "/ssf/status",
                         body={"stream_id": stream_id, "status": "paused", "reason": "maintenance"})
    assert paused.json() == {"stream_id": stream_id, "status": "paused", "reason": "maintenance"}
    verify(server, token, stream_id, "while-paused")
    time.sleep(0.5)
    assert receiver.requests_seen == 0, "a paused stream's SETs are held (SSF 1.0 §8.1.2)"
    stream_call(server, token, "POST", "/ssf/status", body={"stream_id": stream_id, "status": "enabled"})
    assert receiver.wait_for(1, timeout=2)

    to_poll = stream_call(server, token, "PATCH", body={"stream_id": stream_id,
                                                        "delivery": {"method": "urn:ietf:rfc:8936"}})
    assert to_poll.status_code == 200 and to_poll.json()["delivery"]["method"] == "urn:ietf:rfc:8936"
    verify(server, token, stream_id, "polled")
    deadline = time.monotonic() + 2
    waiting = {}
    while not waiting and time.monotonic() < deadline:
        waiting = stream_call(server, token, "POST", "/ssf/poll",
                              body={"returnImmediately": True}).json()["sets"]
    (signed,) = waiting.values()
    assert verified(server, signed)[1]["events"] == {VERIFICATION: {"state": "polled"}}

    back = stream_call(server, token, "PUT", body={"stream_id": stream_id, "delivery": {
        "method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}})
    assert back.status_code == 200, back.text
    states = [verified(server, s)[1]["events"][VERIFICATION]["state"]
              for s in receiver.wait_for(2, timeout=2)]
    assert states == ["while-paused", "polled"], "the unacknowledged SET is pushed after the switch"
