"""The whole story on a Redis Cluster: every multi-key step stays in one slot (redis-py refuses a
cross-slot transaction), and deleting a person leaves no key of theirs on any node."""

from __future__ import annotations

from aggregator.accounts.lifecycle import delete_person
from tests.events.conftest import (  # noqa: F401 - receiver(s), delivery_worker: fixtures
    delivery_worker,
    events_app,
    push_stream,
    receiver,
    receivers,
    verified,
)
from tests.introspection.test_story import accounts, introspect, nat_with_two_banks, refresh_count
from tests.oauth.apps import (
    DATA,
    code_flow,
    exchange,
    make_app,
    person_id_of,
    seed_registration,
    signed_up,
)


def grapher_token(server, agent, app) -> dict:
    """Consent, code and tokens, with a refresh token (``offline_access``)."""
    params, verifier = code_flow(server, app, agent, scope=f"openid offline_access {DATA}")
    answer = exchange(app, params["code"], verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_nat_s_story_on_a_cluster_then_nat_leaves_without_a_trace(server, sandbox_bank, redis_cluster):
    # sign up, link two institutions (their tokens rotate on every refresh and live 30 s, so
    # every introspection refreshes upstream)
    nat = nat_with_two_banks(server, sandbox_bank, rotate_refresh_tokens=True, access_token_ttl=30)
    person_id = person_id_of(server, nat)
    grapher = make_app(server)

    tokens = grapher_token(server, nat, grapher)  # consent, code, token
    before = refresh_count(sandbox_bank)
    for _ in range(2):  # introspection, each refreshing both banks with rotation
        body = introspect(grapher, tokens["introspection_endpoint"], tokens["access_token"])
        assert body["active"] is True
        assert set(body["institutions"]) == {"Bank of Astoria", "Monami Card"}
        for entry in body["institutions"].values():
            assert entry["status"] == "ok", entry
            assert accounts(entry).status_code == 200
    assert refresh_count(sandbox_bank) - before == 4

    # our own refresh token rotates too
    renewed = grapher.post("/token", {"grant_type": "refresh_token",
                                      "refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert introspect(grapher, tokens["introspection_endpoint"], fresh["access_token"])["active"]

    # revocation
    assert grapher.post("/revoke", {"token": fresh["access_token"]}).status_code == 200
    assert introspect(grapher, tokens["introspection_endpoint"], fresh["access_token"]) == {
        "active": False}

    # removal of one institution
    store = server.services.store
    astoria = next(r for r in store.registrations.list(person_id)
                   if r.institution_name == "Bank of Astoria")
    removed = nat.post_form("/connections/remove", {"registration": astoria.id},
                            form_page="/connections")
    assert removed.status_code == 303, removed.text
    assert [r.institution_name for r in store.registrations.list(person_id)] == ["Monami Card"]
    other = grapher_token(server, nat, grapher)
    body = introspect(grapher, other["introspection_endpoint"], other["access_token"])
    assert set(body["institutions"]) == {"Monami Card"}

    # deleting Nat: nothing of theirs is left on any node
    person = store.people.get(person_id)
    assert delete_person(server.services, person) == []
    leftovers = [key for key in redis_cluster.every_key() if person_id.encode() in key]
    assert leftovers == []
    assert store.people.find_by_username("nat") is None
    assert store.grants.get(other["grant_id"]) is None


def test_events_on_a_cluster_the_revocation_reaches_the_app(server, redis_cluster, receiver,  # noqa: F811
                                                             delivery_worker):  # noqa: F811
    """The outbox (the person's slot) and the streams and queues (``{ssf}``) each stay in one slot."""
    agent = signed_up(server, "ivy")
    seed_registration(server, agent, "Bank of Astoria")
    app = events_app(server)
    tokens = grapher_token(server, agent, app)
    push_stream(server, app, receiver.url)
    delivery_worker(server)
    assert agent.post_form(f"/apps/{tokens['grant_id']}/revoke", {}, form_page="/").status_code == 303
    (signed,) = receiver.wait_for(1, timeout=2.0)
    assert verified(server, signed)[1]["sub_id"]["session"]["id"] == tokens["grant_id"]
