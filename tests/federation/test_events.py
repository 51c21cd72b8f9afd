"""B subscribed to A's events (OpenID SSF): A's delivery worker (a real process) pushes its SETs
to B's federation route; a revocation at A shows at B at once, without a status check, and B's
own apps hear of it. Forged SETs change nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from aggregator.events.delivery import DeliveryWorker
from aggregator.events.sets import sign_set, subject
from aggregator.events.types import PUSH, SESSION_REVOKED
from aggregator.testing.servers import reserve_port
from plugins.federation.events import JTI_TTL, SUBSCRIPTION_KEY
from tests.events.conftest import Receiver, _handler, events_app, push_stream, verified
from tests.federation.conftest import register_downstream, start_downstream
from tests.federation.test_two_servers import link_a_into_b, registrations_at_b
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import DATA, App, allow, ask, person_id_of, signed_up

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def b_client(upstream) -> tuple[int, App]:
    """B's port and its client at A, allowed client credentials with the scope ``events``."""
    port = reserve_port()
    client = register_downstream(upstream, f"http://127.0.0.1:{port}",
                                 scope=f"openid offline_access {DATA} events",
                                 grant_types=["authorization_code", "refresh_token", "client_credentials"])
    return port, client


@pytest.fixture
def downstream(make_as, upstream, redis_url, b_client) -> LiveAS:
    return start_downstream(make_as, upstream, redis_url, *b_client)


@pytest.fixture
def a_delivery(upstream, redis_url) -> Iterator[subprocess.Popen]:
    """A's delivery worker as ``make run`` starts it: its own process, A's environment."""
    env = {**os.environ, "REDIS_URL": redis_url, "AGGREGATOR_ISSUER": upstream.url,
           "AGGREGATOR_DATA_DIR": str(upstream.services.settings.data_dir),
           "AGGREGATOR_PLUGINS": "", "AGGREGATOR_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "aggregator.events.delivery"], env=env, cwd=ROOT)
    yield worker
    worker.terminate()
    worker.wait(10)


@pytest.fixture
def b_delivery(downstream) -> Iterator[DeliveryWorker]:
    worker = DeliveryWorker(downstream.services).start()
    yield worker
    worker.stop(5)


@pytest.fixture
def grapher_receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/events"
    Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def statuses_at_b(downstream: LiveAS, nat_at_b: PersonAgent) -> dict[str, str]:
    """Read from B's store: no status check, no request to A."""
    return {record.institution_name: record.status for record in
            downstream.services.store.registrations.list(person_id_of(downstream, nat_at_b))}


def wait_for_statuses(downstream: LiveAS, nat_at_b: PersonAgent, wanted: dict[str, str],
                      timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (found := statuses_at_b(downstream, nat_at_b)) != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def linked(downstream: LiveAS, upstream: LiveAS, nat_at_a: PersonAgent) -> PersonAgent:
    nat_at_b = signed_up(downstream, "nat-b")
    link_a_into_b(nat_at_b, nat_at_a)
    assert statuses_at_b(downstream, nat_at_b) == {"Bank of Astoria": "ok", "Monami Card": "ok"}
    return nat_at_b


def test_linking_subscribes_b_to_a_and_a_revocation_there_shows_at_b_at_once(
        downstream, upstream, nat_at_a, b_client, a_delivery, b_delivery, grapher_receiver):
    nat_at_b = linked(downstream, upstream, nat_at_a)
    # B's stream at A: push to B's federation route, the three types B acts on
    stream = upstream.services.store.event_streams.get(b_client[1].client_id)
    assert stream is not None and stream.method == PUSH
    assert stream.endpoint_url == f"{downstream.url}/plugins/federation/events"
    assert SESSION_REVOKED in stream.events_requested and len(stream.events_requested) == 3

    # the Grapher at B, granted Bank of Astoria, listens to B's events
    grapher = events_app(downstream)
    consent, verifier = ask(downstream, grapher, nat_at_b, scope=f"openid {DATA}")
    astoria = registrations_at_b(downstream, nat_at_b)["Bank of Astoria"]
    tokens = allow(grapher, nat_at_b, consent, verifier, registrations=[astoria])
    push_stream(downstream, grapher, grapher_receiver.url)

    [grant] = upstream.services.store.grants.for_person(person_id_of(upstream, nat_at_a))
    revoked = nat_at_a.post_form(f"/apps/{grant.id}/revoke", {}, form_page="/")
    assert revoked.status_code in (200, 302, 303), revoked.text
    started = time.monotonic()

    found = wait_for_statuses(downstream, nat_at_b, {"Bank of Astoria": "reauth_required",
                                                     "Monami Card": "reauth_required"}, timeout=2)
    assert found == {"Bank of Astoria": "reauth_required", "Monami Card": "reauth_required"}
    assert time.monotonic() - started < 2

    # B's own event to the Grapher: its one institution, now reauth_required
    (signed,) = grapher_receiver.wait_for(1, timeout=5)
    claims = verified(downstream, signed)[1]
    assert claims["aud"] == grapher.client_id
    event = claims["events"][f"{downstream.url}/events/institution-status-changed"]
    assert event["registration_id"] == astoria and event["grant_id"] == tokens["grant_id"]
    assert event["status"] == "reauth_required" and event["previous_status"] == "ok"


def test_b_confirming_its_subscription_keeps_its_one_stream_at_a_and_enables_it_again(
        downstream, upstream, nat_at_a, b_client):
    nat_at_b = linked(downstream, upstream, nat_at_a)
    streams = upstream.services.store.event_streams
    client_id = b_client[1].client_id
    before = streams.get(client_id)
    assert before is not None and before.status == "enabled"
    streams.set_status(client_id, "paused", "B was unreachable")  # as A's worker pauses it
    # a day later B confirms its subscription (here: its cache forgets it), at a status check
    downstream.services.plugins["federation"].context.cache.delete(SUBSCRIPTION_KEY)
    assert nat_at_b.http.get(nat_at_b.url("/connections")).status_code == 200

    after = streams.get(client_id)
    assert after is not None and after.stream_id == before.stream_id and after.status == "enabled"
    assert after.endpoint_url == f"{downstream.url}/plugins/federation/events"


def test_nat_narrowing_b_at_a_leaves_at_b_only_what_a_still_shares(
        downstream, upstream, nat_at_a, a_delivery):
    nat_at_b = linked(downstream, upstream, nat_at_a)
    nat_id = person_id_of(upstream, nat_at_a)
    [grant] = upstream.services.store.grants.for_person(nat_id)
    monami = next(r.id for r in upstream.services.store.registrations.list(nat_id)
                  if r.institution_name == "Monami Card")

    # on A's dashboard, Nat unticks Bank of Astoria for Aggregator B
    edited = nat_at_a.post_form(f"/apps/{grant.id}/edit",
                                {"keep": [f"{monami} {scope}" for scope in grant.pairs[monami]]},
                                form_page="/")
    assert edited.status_code == 303, edited.text

    found = wait_for_statuses(downstream, nat_at_b, {"Bank of Astoria": "reauth_required",
                                                     "Monami Card": "ok"}, timeout=2)
    assert found == {"Bank of Astoria": "reauth_required", "Monami Card": "ok"}


# -------------------------------------------------------------------- forged and replayed SETs


def post_set(downstream: LiveAS, signed: str, content_type: str = "application/secevent+jwt"
             ) -> requests.Response:
    return requests.post(f"{downstream.url}/plugins/federation/events", data=signed.encode(),
                         headers={"Content-Type": content_type}, timeout=10)


def a_set(upstream: LiveAS, client_id: str, person_id: str, grant_id: str, event: str,
          payload: dict[str, Any], *, jti: str, audience: str | None = None) -> str:
    """A SET signed with A's own key, as A's relay makes it."""
    svc = upstream.services
    client = svc.store.clients.get(client_id)
    assert client is not None
    return sign_set(svc, audience=audience or client_id, jti=jti,
                    sub_id=subject(svc, client, person_id, grant_id), event_type=event,
                    payload={"grant_id": grant_id, **payload})


def test_forged_or_replayed_sets_are_refused_and_change_nothing(
        downstream, upstream, nat_at_a, b_client):
    nat_at_b = linked(downstream, upstream, nat_at_a)
    client_id = b_client[1].client_id
    nat_id = person_id_of(upstream, nat_at_a)
    [grant] = upstream.services.store.grants.for_person(nat_id)
    status_type = f"{upstream.url}/events/institution-status-changed"
    astoria_at_a = next(r.id for r in upstream.services.store.registrations.list(nat_id)
                        if r.institution_name == "Bank of Astoria")
    revoked = a_set(upstream, client_id, nat_id, grant.id, SESSION_REVOKED, {}, jti="r-1")
    all_ok = {"Bank of Astoria": "ok", "Monami Card": "ok"}

    # a stranger's key under A's kid
    header, claims = verified(upstream, revoked)
    forged = jwt.encode(header, claims, RSAKey.generate_key(2048), algorithms=["RS256"])
    answer = post_set(downstream, forged)
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_key"
    # A's key, but for another of A's clients
    other = a_set(upstream, client_id, nat_id, grant.id, SESSION_REVOKED, {}, jti="r-2",
                  audience="someone-else")
    answer = post_set(downstream, other)
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_audience"
    # A's key, but not a SET (an ID token's typ)
    untyped = jwt.encode({**header, "typ": "JWT"}, claims,
                         upstream.services.signing_keys.private_key("RS256"), algorithms=["RS256"])
    answer = post_set(downstream, untyped)
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_request"
    # not a SET's media type, not a JWT
    assert post_set(downstream, revoked, "application/json").json()["err"] == "invalid_request"
    assert post_set(downstream, "not.a.jwt").json()["err"] == "invalid_request"
    assert statuses_at_b(downstream, nat_at_b) == all_ok

    # a genuine status event applies once; replayed after a newer one, it changes nothing
    needs = a_set(upstream, client_id, nat_id, grant.id, status_type,
                  {"registration_id": astoria_at_a, "status": "reauth_required"}, jti="s-1")
    assert post_set(downstream, needs).status_code == 202
    assert statuses_at_b(downstream, nat_at_b) == {"Bank of Astoria": "reauth_required",
                                                   "Monami Card": "ok"}
    back = a_set(upstream, client_id, nat_id, grant.id, status_type,
                 {"registration_id": astoria_at_a, "status": "ok"}, jti="s-2")
    assert post_set(downstream, back).status_code == 202
    assert post_set(downstream, needs).status_code == 202  # acknowledged (RFC 8935 §2.2) ...
    assert statuses_at_b(downstream, nat_at_b) == all_ok  # ... but not applied again

    # a genuine SET issued longer ago than B remembers jtis changes nothing
    stale_header, stale = verified(upstream, needs)
    stale = {**stale, "jti": "s-3", "iat": int(time.time()) - JTI_TTL - 60}
    old = jwt.encode(stale_header, stale, upstream.services.signing_keys.private_key("RS256"),
                     algorithms=["RS256"])
    assert post_set(downstream, old).status_code == 202
    assert statuses_at_b(downstream, nat_at_b) == all_ok

    # a grant none of B's links holds changes nothing
    elsewhere = a_set(upstream, client_id, nat_id, "another-grant", SESSION_REVOKED, {}, jti="r-3")
    assert post_set(downstream, elsewhere).status_code == 202
    assert statuses_at_b(downstream, nat_at_b) == all_ok
