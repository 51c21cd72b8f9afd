"""An app manages its SSF stream; the person revokes it on the dashboard; the SET arrives signed."""

from __future__ import annotations

import time

import requests

from aggregator.events.cli import events
from aggregator.events.types import SESSION_REVOKED
from tests.events.conftest import (
    events_app,
    events_token,
    push_stream,
    shared_with_app,
    stream_call,
    verified,
)
from tests.oauth.apps import (
    INITIAL_ACCESS_TOKEN,
    REDIRECT,
    assert_error_redirect,
    authorization_url,
    code_flow,
    exchange,
    id_token_claims,
    person_id_of,
    pkce,
    signed_up,
    walk,
)
from tests.oauth.fapi_client import DPoPKey
from tests.oauth.test_dpop import token_request


def test_discovery_names_every_endpoint(make_as):
    server = make_as()
    config = requests.get(f"{server.url}/.well-known/ssf-configuration", timeout=10).json()
    assert config["issuer"] == server.url
    assert config["jwks_uri"] == f"{server.url}/jwks"
    assert config["delivery_methods_supported"] == ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"]
    for name in ("configuration_endpoint", "status_endpoint", "verification_endpoint"):
        assert config[name].startswith(f"{server.url}/ssf/")
    assert config["authorization_schemes"] == [{"spec_urn": "urn:ietf:rfc:6749"}]


def test_the_person_revoking_the_app_sends_it_a_verifiable_set_within_a_second(
        make_as, receiver, delivery_worker):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    agent, grapher, tokens = shared_with_app(server, "ada")
    _, stream = push_stream(server, grapher, receiver.url)
    assert stream["aud"] == grapher.client_id and stream["iss"] == server.url
    assert SESSION_REVOKED in stream["events_delivered"]
    delivery_worker(server)

    revoked = agent.post_form(f"/apps/{tokens['grant_id']}/revoke", {}, form_page="/")
    assert revoked.status_code == 303
    at = time.monotonic()
    sets = receiver.wait_for(1, timeout=1.0)
    assert sets, "no SET within a second of the revocation"
    assert time.monotonic() - at <= 1.0
    _, claims = verified(server, sets[0])
    assert claims["aud"] == grapher.client_id
    event = claims["events"][SESSION_REVOKED]
    assert event["grant_id"] == tokens["grant_id"] and event["initiating_entity"] == "user"
    userinfo = requests.get(f"{server.url}/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401, "the token died with the grant"
    subject = claims["sub_id"]
    assert subject["format"] == "complex"
    assert subject["session"] == {"format": "opaque", "id": tokens["grant_id"]}
    assert subject["user"]["iss"] == server.url
    assert subject["user"]["sub"] == id_token_claims(server, tokens["id_token"])["sub"]


def test_bad_input_to_the_stream_endpoints_is_an_oauth_error(make_as, receiver):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = events_app(server)
    token = events_token(app)

    def check(answer: requests.Response, status: int, error: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error and answer.json().get("error_description") or status == 401

    check(stream_call(server, "", "GET"), 401, "invalid_token")
    check(stream_call(server, "not-a-token", "GET"), 401, "invalid_token")
    check(stream_call(server, token, "GET"), 404, "not_found")
    check(requests.post(f"{server.url}/ssf/stream", data="x", timeout=10,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}),
          415, "invalid_request")
    check(requests.post(f"{server.url}/ssf/stream", data="[" * 5000, timeout=10,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/json"}), 400, "invalid_request")
    check(stream_call(server, token, "POST", body=[]), 400, "invalid_request")
    check(stream_call(server, token, "POST", body={}), 400, "invalid_request")
    check(stream_call(server, token, "POST", body={"delivery": {"method": "smoke-signals"}}),
          400, "invalid_request")
    check(stream_call(server, token, "POST", body={"delivery": {
        "method": "urn:ietf:rfc:8935", "endpoint_url": "http://app.example/events"}}),
          400, "invalid_request")
    check(stream_call(server, token, "POST", body={"delivery": {
        "method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url},
        "events_requested": ["https://example.com/not-ours"]}), 400, "invalid_request")
    created = stream_call(server, token, "POST", body={"delivery": {
        "method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}})
    assert created.status_code == 201, created.text
    check(stream_call(server, token, "POST", body={"delivery": {
        "method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}}), 409, "invalid_request")
    check(stream_call(server, token, "GET", params={"stream_id": "someone-elses"}), 404, "not_found")
    check(stream_call(server, token, "PATCH", body={"description": "no id"}), 400, "invalid_request")
    check(stream_call(server, token, "POST", "/ssf/status",
                      body={"stream_id": created.json()["stream_id"], "status": "asleep"}),
          400, "invalid_request")
    check(stream_call(server, token, "DELETE"), 400, "invalid_request")
    check(stream_call(server, token, "POST", "/ssf/poll", body={}), 400, "invalid_request")

    # the events scope is the app's own: a person is never asked for it, and a token the app
    # got for a person does not manage the app's stream
    agent = signed_up(server, "bob")
    _, challenge = pkce()
    asked = walk(agent, authorization_url(
        server, client_id=app.client_id, response_type="code", redirect_uri=REDIRECT,
        scope="openid events", state="st-1", code_challenge=challenge, code_challenge_method="S256"))
    assert_error_redirect(asked, server, "invalid_scope")
    params, verifier = code_flow(server, app, agent, scope="openid accounts:read")
    personal = exchange(app, params["code"], verifier).json()["access_token"]
    check(stream_call(server, personal, "GET"), 403, "insufficient_scope")

    stream_id = created.json()["stream_id"]
    read = stream_call(server, token, "GET", params={"stream_id": stream_id})
    assert read.status_code == 200 and read.json()["stream_id"] == stream_id
    patched = stream_call(server, token, "PATCH", body={"stream_id": stream_id, "description": "d"})
    assert patched.status_code == 200 and patched.json()["description"] == "d"
    for _ in range(30):
        assert stream_call(server, token, "POST", "/ssf/verify",
                           body={"stream_id": stream_id}).status_code == 204
    check(stream_call(server, token, "POST", "/ssf/verify", body={"stream_id": stream_id}),
          429, "slow_down")
    deleted = stream_call(server, token, "DELETE", params={"stream_id": stream_id})
    assert deleted.status_code == 204
    check(stream_call(server, token, "GET"), 404, "not_found")


def test_the_person_narrowing_the_grant_sends_what_it_allows_now(make_as, receiver, delivery_worker):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    agent, grapher, tokens = shared_with_app(server, "cyd", "Bank of Astoria", "Bank of Brindle",
                                             scope="openid accounts:read")
    grant_id = tokens["grant_id"]
    astoria = next(r for r in server.services.store.registrations.list(person_id_of(server, agent))
                   if r.institution_name == "Bank of Astoria")
    push_stream(server, grapher, receiver.url)
    delivery_worker(server)

    edited = agent.post_form(f"/apps/{grant_id}/edit", {"keep": f"{astoria.id} accounts:read"},
                             form_page="/")
    assert edited.status_code == 303
    (signed,) = receiver.wait_for(1, timeout=1.0)
    event = verified(server, signed)[1]["events"][f"{server.url}/events/grant-changed"]
    assert event["grant_id"] == grant_id
    assert event["authorization_details"] == [{
        "type": "account_information", "actions": ["accounts:read"],
        "registration_id": astoria.id, "name": "Bank of Astoria"}]


def test_deleting_the_app_deletes_its_stream(make_as, receiver):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = events_app(server)
    push_stream(server, app, receiver.url)
    assert app.client_id in server.app.test_cli_runner().invoke(events, ["status"]).output
    deleted = requests.delete(app.info["registration_client_uri"], timeout=10,
                              headers={"Authorization": f"Bearer {app.info['registration_access_token']}"})
    assert deleted.status_code == 204
    assert app.client_id not in server.app.test_cli_runner().invoke(events, ["status"]).output


def test_a_dpop_bound_token_manages_the_stream_only_with_its_proof(make_as, receiver):
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    app = events_app(server)
    holder = DPoPKey()
    issued = token_request(app, holder, grant_type="client_credentials", scope="events")
    assert issued.status_code == 200 and issued.json()["token_type"] == "DPoP", issued.text
    token = issued.json()["access_token"]
    url = f"{server.url}/ssf/stream"
    body = {"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}}
    created = requests.post(url, json=body, timeout=10, headers={
        "Authorization": f"DPoP {token}", "DPoP": holder.proof("POST", url, token=token)})
    assert created.status_code == 201, created.text
    without_proof = requests.get(url, timeout=10, headers={"Authorization": f"DPoP {token}"})
    assert without_proof.status_code == 401 and "error" in without_proof.json()
    as_bearer = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    read = requests.get(url, timeout=10, headers={"Authorization": f"DPoP {token}",
                                                  "DPoP": holder.proof("GET", url, token=token)})
    assert read.status_code == 200 and read.json()[0]["stream_id"] == created.json()["stream_id"]
