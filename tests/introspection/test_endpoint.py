"""``POST /introspect`` over HTTP: what an app learns about its token, and what it does not."""

from __future__ import annotations

import time

import requests
from joserfc import jwt

from tests.introspection.apps import DATA, access_token, grant_to, granted, register_app
from tests.introspection.crowd import at_once
from tests.introspection.upstream import link

RFC7662_MEMBERS = ["active", "scope", "client_id", "sub", "exp", "iat", "iss", "token_type",
                   "grant_id", "authorization_details", "institutions"]


def test_a_person_registers_two_banks_and_the_grapher_gets_both(server, person, banks):
    svc = server.services
    astoria = link(svc, person.id, banks("Bank of Astoria"))
    monami = link(svc, person.id, banks("Monami Card"))
    grapher = register_app(svc, "Grapher")
    grant = grant_to(svc, grapher, person.id, {astoria.id, monami.id})
    token = access_token(svc, grapher, grant)

    answer = grapher.introspect(server.url, token)

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert list(body) == RFC7662_MEMBERS
    assert body["active"] is True
    assert body["client_id"] == grapher.client_id
    assert body["iss"] == server.url
    assert body["grant_id"] == grant.id
    assert body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]
    assert list(body["institutions"]) == ["Bank of Astoria", "Monami Card"]
    assert body["authorization_details"] == [  # RFC 9396 §9.1: what the token was granted
        {"type": "account_information", "actions": sorted(DATA.split()), "registration_id": record.id,
         "name": record.institution_name} for record in (astoria, monami)]
    for record, entry in zip([astoria, monami], body["institutions"].values(), strict=True):
        assert list(entry) == ["endpoint", "access_token", "token_type", "expires_at", "provider",
                               "registration_id", "status"]
        assert entry["endpoint"] == record.endpoint
        assert entry["registration_id"] == record.id
        assert (entry["provider"], entry["status"], entry["token_type"]) == ("fakebank", "ok", "Bearer")
        assert entry["expires_at"] >= time.time() + 60
        data = requests.get(f"{entry['endpoint']}/accounts", timeout=5,
                            headers={"Authorization": f"Bearer {entry['access_token']}"})
        assert data.status_code == 200


def test_only_the_registrations_the_grant_covers_appear(server, person, banks):
    svc = server.services
    shared = link(svc, person.id, banks("Bank of Astoria"))
    private = link(svc, person.id, banks("Monami Card"))
    grapher, token = granted(svc, person.id, {shared.id})

    body = grapher.introspect(server.url, token).json()

    assert [e["registration_id"] for e in body["institutions"].values()] == [shared.id]
    assert private.id not in str(body)


def test_two_accounts_at_one_bank_get_distinct_names(server, person, banks):
    svc = server.services
    bank = banks("Bank of Astoria")
    first, second = link(svc, person.id, bank), link(svc, person.id, bank)
    grapher, token = granted(svc, person.id, {first.id, second.id})

    institutions = grapher.introspect(server.url, token).json()["institutions"]

    assert sorted(institutions) == ["Bank of Astoria", "Bank of Astoria (2)"]
    assert {e["registration_id"] for e in institutions.values()} == {first.id, second.id}


def test_another_client_learns_nothing_about_the_token(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher, token = granted(svc, person.id, {record.id})

    answer = register_app(svc, "Snoop").introspect(server.url, token)

    assert answer.status_code == 200
    assert answer.json() == {"active": False}


def test_a_resource_server_of_the_app_may_introspect_its_tokens(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher, token = granted(svc, person.id, {record.id})
    api = register_app(svc, "Grapher API", resource_server_for=(grapher.client_id,))

    body = api.introspect(server.url, token).json()

    assert body["active"] is True and body["client_id"] == grapher.client_id
    assert body["institutions"]["Bank of Astoria"]["status"] == "ok"


def test_sub_is_pairwise_and_stable(server, person, banks):
    svc = server.services
    grapher, budgeter = register_app(svc, "Grapher"), register_app(svc, "Budgeter")
    first = access_token(svc, grapher, grant_to(svc, grapher, person.id, set()))
    again = access_token(svc, grapher, grant_to(svc, grapher, person.id, set()))
    other = access_token(svc, budgeter, grant_to(svc, budgeter, person.id, set()))

    subs = [app.introspect(server.url, token).json()["sub"]
            for app, token in ((grapher, first), (grapher, again), (budgeter, other))]

    assert subs[0] == subs[1]
    assert subs[0] != subs[2]
    assert person.id not in subs


def test_unknown_expired_and_revoked_tokens_are_inactive(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher = register_app(svc, "Grapher")
    grant = grant_to(svc, grapher, person.id, {record.id})
    revoked = access_token(svc, grapher, grant)
    svc.store.tokens.revoke_access_token(svc.store.tokens.find_access_token(revoked))
    expiring = access_token(svc, grapher, grant, ttl=1)
    time.sleep(1.1)

    for token in ("no-such-token", revoked, expiring, "x" * 5000):
        answer = grapher.introspect(server.url, token)
        assert answer.status_code == 200
        assert answer.json() == {"active": False}


def test_revoking_the_grant_makes_its_token_inactive_at_once(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher = register_app(svc, "Grapher")
    grant = grant_to(svc, grapher, person.id, {record.id})
    token = access_token(svc, grapher, grant)
    assert grapher.introspect(server.url, token).json()["active"] is True

    svc.store.grants.delete(person.id, grant.id)

    assert grapher.introspect(server.url, token).json() == {"active": False}


def test_a_refresh_token_is_described_but_releases_no_upstream_tokens(server, person, banks):
    svc = server.services
    bank = banks()
    record = link(svc, person.id, bank)
    grapher = register_app(svc, "Grapher")
    grant = grant_to(svc, grapher, person.id, {record.id})
    refresh, _ = svc.store.tokens.issue_refresh_token(
        client_id=grapher.client_id, person_id=person.id, grant_id=grant.id, scope=grant.scope,
        ttl=3600)

    body = grapher.introspect(server.url, refresh, token_type_hint="refresh_token").json()
    svc.store.tokens.revoke_refresh_token(svc.store.tokens.find_refresh_token(refresh))
    after_revocation = grapher.introspect(server.url, refresh).json()

    assert body["active"] is True and body["grant_id"] == grant.id
    assert "institutions" not in body and "token_type" not in body
    assert bank.refreshes == 0
    assert after_revocation == {"active": False}


def test_an_app_token_without_a_person_has_no_institutions(server):
    svc = server.services
    grapher = register_app(svc, "Grapher")
    token = access_token(svc, grapher, None)

    body = grapher.introspect(server.url, token).json()

    assert body["active"] is True
    assert "institutions" not in body and "sub" not in body and "grant_id" not in body


def test_a_token_without_data_scopes_gets_no_upstream_tokens(server, person, banks):
    svc = server.services
    bank = banks()
    record = link(svc, person.id, bank)
    grapher, token = granted(svc, person.id, {record.id}, scope="openid")

    body = grapher.introspect(server.url, token).json()

    assert body["institutions"] == {}
    assert bank.refreshes == 0


def test_registrations_needing_the_person_say_so_without_a_token(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    svc.store.registrations.set_status(record, "reauth_required", "Bank of Astoria ended the link.")
    grapher, token = granted(svc, person.id, {record.id})

    entry = grapher.introspect(server.url, token).json()["institutions"]["Bank of Astoria"]

    assert entry == {"endpoint": record.endpoint, "provider": "fakebank", "registration_id": record.id,
                     "status": "reauth_required", "error": "Bank of Astoria ended the link."}


def test_a_failing_or_hanging_bank_only_costs_its_own_entry(server, person, banks):
    svc = server.services
    good = link(svc, person.id, banks("Bank of Astoria", latency_ms=100))
    down = link(svc, person.id, banks("Monami Card", fail=True))
    hung = link(svc, person.id, banks("Norma Securities", latency_ms=5000))
    grapher, token = granted(svc, person.id, {good.id, down.id, hung.id})

    started = time.monotonic()
    answer = grapher.introspect(server.url, token)
    elapsed = time.monotonic() - started

    institutions = answer.json()["institutions"]
    assert answer.status_code == 200
    assert elapsed < 1.6, f"took {elapsed:.2f} s with a 1 s upstream timeout"
    assert institutions["Bank of Astoria"]["status"] == "ok"
    assert institutions["Monami Card"]["status"] == "error"
    assert "temporarily unavailable" in institutions["Monami Card"]["error"]
    assert institutions["Norma Securities"]["status"] == "error"
    assert "did not answer within 1 seconds" in institutions["Norma Securities"]["error"]
    assert "access_token" not in institutions["Norma Securities"]


def test_concurrent_introspections_cause_one_upstream_refresh(server, person, banks):
    svc = server.services
    bank = banks(latency_ms=200)
    record = link(svc, person.id, bank)
    grapher, token = granted(svc, person.id, {record.id})

    bodies = at_once(16, lambda: grapher.introspect(server.url, token).json())

    tokens = [body["institutions"]["Bank of Astoria"]["access_token"] for body in bodies]

    assert bank.refreshes == 1
    assert len(tokens) == 16 and len(set(tokens)) == 1


def test_a_shared_upstream_token_is_withheld_when_the_grant_covers_only_part(server, person, banks):
    svc = server.services
    bank = banks()
    first = link(svc, person.id, bank, name="Bank of Astoria", share_group="user-1")
    link(svc, person.id, bank, name="Monami Card", share_group="user-1")
    grapher, token = granted(svc, person.id, {first.id})

    entry = grapher.introspect(server.url, token).json()["institutions"]["Bank of Astoria"]

    assert entry["status"] == "error" and "access_token" not in entry
    assert bank.refreshes == 0


def test_every_release_is_audited_without_token_values(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher, token = granted(svc, person.id, {record.id})

    answer = grapher.introspect(server.url, token, )
    [event] = svc.store.audit.for_person(person.id)

    assert event.client_id == grapher.client_id and event.client_name == "Grapher"
    assert event.registrations == ((record.id, "Bank of Astoria"),)
    assert event.request_id == answer.headers["X-Request-Id"]
    upstream = answer.json()["institutions"]["Bank of Astoria"]["access_token"]
    for key in svc.store.redis.scan_iter("audit*"):
        assert upstream.encode() not in str(svc.store.redis.xrange(key)).encode()


def test_an_inactive_answer_is_not_audited(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher, snoop = register_app(svc, "Grapher"), register_app(svc, "Snoop")
    token = access_token(svc, grapher, grant_to(svc, grapher, person.id, {record.id}))

    snoop.introspect(server.url, token)

    assert svc.store.audit.for_person(person.id) == []


# ---------------------------------------------------------------- RFC 9701


def test_a_client_may_ask_for_a_signed_jwt_response(server, person, banks):
    svc = server.services
    record = link(svc, person.id, banks())
    grapher, token = granted(svc, person.id, {record.id})

    answer = grapher.introspect(server.url, token, accept="application/token-introspection+jwt")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/token-introspection+jwt"
    assert answer.headers["Cache-Control"] == "no-store"
    jwks = requests.get(f"{server.url}/jwks", timeout=5)
    keys = jwks.json() if jwks.ok else svc.signing_keys.public_jwks()
    from joserfc.jwk import KeySet

    decoded = jwt.decode(answer.text, KeySet.import_key_set(keys), algorithms=["RS256"])
    assert decoded.header["typ"] == "token-introspection+jwt"
    assert decoded.header["alg"] == "RS256"
    claims = decoded.claims
    assert (claims["iss"], claims["aud"]) == (server.url, grapher.client_id)
    assert abs(claims["iat"] - time.time()) < 10
    assert "sub" not in claims and "exp" not in claims
    inner = claims["token_introspection"]
    assert inner["active"] is True and list(inner) == RFC7662_MEMBERS
    assert inner["institutions"]["Bank of Astoria"]["status"] == "ok"


def test_an_inactive_token_gets_a_signed_inactive_answer(server):
    grapher = register_app(server.services, "Grapher")

    answer = grapher.introspect(server.url, "nope", accept="application/token-introspection+jwt")

    claims = jwt.decode(answer.text, server.services.signing_keys.public_keyset()).claims
    assert claims["token_introspection"] == {"active": False}


def test_plain_json_stays_the_default(server):
    grapher = register_app(server.services, "Grapher")
    for accept in (None, "*/*", "application/json", "application/json, application/jwt"):
        answer = grapher.introspect(server.url, "nope", accept=accept)
        assert answer.headers["Content-Type"] == "application/json"


# ---------------------------------------------------------------- malformed requests


def test_malformed_requests_get_rfc_errors_never_500(server):
    grapher = register_app(server.services, "Grapher")
    url = f"{server.url}/introspect"
    auth = (grapher.client_id, grapher.secret)

    cases = {
        "no token": requests.post(url, data={}, auth=auth, timeout=5),
        "empty token": requests.post(url, data={"token": ""}, auth=auth, timeout=5),
        "repeated token": requests.post(url, data=[("token", "a"), ("token", "b")], auth=auth,
                                        timeout=5),
        "json body": requests.post(url, json={"token": "a"}, auth=auth, timeout=5),
        "no client": requests.post(url, data={"token": "a"}, timeout=5),
        "wrong secret": requests.post(url, data={"token": "a"}, auth=(grapher.client_id, "x"),
                                      timeout=5),
        "unknown client": requests.post(url, data={"token": "a"}, auth=("who", "x"), timeout=5),
        "get": requests.get(url, timeout=5),
        "huge body": requests.post(url, data={"token": "a" * 200_000}, auth=auth, timeout=5),
    }

    expected = {"no token": (400, "invalid_request"), "empty token": (400, "invalid_request"),
                "repeated token": (400, "invalid_request"), "json body": (415, "invalid_request"),
                "no client": (401, "invalid_client"), "wrong secret": (401, "invalid_client"),
                "unknown client": (401, "invalid_client"), "get": (405, "method_not_allowed"),
                "huge body": (413, "invalid_request")}
    for name, answer in cases.items():
        assert (answer.status_code, answer.json()["error"]) == expected[name], name
        assert answer.headers["Cache-Control"] == "no-store", name


def test_a_token_type_hint_is_accepted_and_ignored(server):
    grapher = register_app(server.services, "Grapher")
    token = access_token(server.services, grapher, None)

    for hint in ("access_token", "refresh_token", "something_else"):
        body = grapher.introspect(server.url, token, token_type_hint=hint).json()
        assert body["active"] is True


# ---------------------------------------------------------------- the worker's recent answers


def test_a_registration_taken_out_of_the_grant_disappears_at_once(server, person, banks):
    svc = server.services
    astoria = link(svc, person.id, banks("Bank of Astoria"))
    monami = link(svc, person.id, banks("Monami Card"))
    grapher, token = granted(svc, person.id, {astoria.id, monami.id})
    assert len(grapher.introspect(server.url, token).json()["institutions"]) == 2

    svc.store.grants.remove_registration(person.id, monami.id)

    assert list(grapher.introspect(server.url, token).json()["institutions"]) == ["Bank of Astoria"]


def test_polling_reuses_fresh_tokens_without_asking_the_bank_again(server, person, banks):
    svc = server.services
    bank = banks()
    record = link(svc, person.id, bank)
    grapher, token = granted(svc, person.id, {record.id})

    answers = [grapher.introspect(server.url, token).json() for _ in range(5)]

    assert bank.refreshes == 1
    assert len({a["institutions"]["Bank of Astoria"]["access_token"] for a in answers}) == 1
    assert len(svc.store.audit.for_person(person.id)) == 5  # every release is audited


def test_a_failed_entry_is_looked_at_again_on_the_next_request(server, person, banks):
    svc = server.services
    bank = banks(fail=True)
    record = link(svc, person.id, bank)
    grapher, token = granted(svc, person.id, {record.id})
    assert grapher.introspect(server.url, token).json()["institutions"]["Bank of Astoria"][
        "status"] == "error"

    bank.faults.fail = False

    entry = grapher.introspect(server.url, token).json()["institutions"]["Bank of Astoria"]
    assert entry["status"] == "ok" and entry["access_token"]
