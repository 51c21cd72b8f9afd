"""Tokens over time: refresh with rotation and reuse detection, narrowing, revocation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.sandbox.flows import api_get, connect, token_request


def userinfo_status(bank, access_token: str, institution: str = "astoria") -> int:
    return api_get(f"{bank.issuer(institution)}/userinfo", access_token).status_code


def revoke(bank, token: str, institution: str = "astoria", **extra: str) -> requests.Response:
    return requests.post(
        f"{bank.issuer(institution)}/revoke", data={"token": token, **extra},
        auth=(bank.client_id, bank.client_secret), timeout=10,
    )


def test_refresh_rotates_the_refresh_token(sandbox_bank):
    _, token = connect(sandbox_bank)
    answer = token_request(sandbox_bank, grant_type="refresh_token",
                           refresh_token=token["refresh_token"])
    assert answer.status_code == 200
    fresh = answer.json()
    assert fresh["refresh_token"] != token["refresh_token"]
    assert fresh["access_token"] != token["access_token"]
    assert fresh["endpoint"] == token["endpoint"]
    assert userinfo_status(sandbox_bank, fresh["access_token"]) == 200
    # The previous access token keeps working until it expires: rotation is about refresh.
    assert userinfo_status(sandbox_bank, token["access_token"]) == 200
    again = token_request(sandbox_bank, grant_type="refresh_token",
                          refresh_token=fresh["refresh_token"])
    assert again.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_grant(sandbox_bank):
    _, token = connect(sandbox_bank)
    fresh = token_request(sandbox_bank, grant_type="refresh_token",
                          refresh_token=token["refresh_token"]).json()
    reuse = token_request(sandbox_bank, grant_type="refresh_token",
                          refresh_token=token["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # Both holders lose everything: the new refresh token and every access token.
    after = token_request(sandbox_bank, grant_type="refresh_token",
                          refresh_token=fresh["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    assert userinfo_status(sandbox_bank, fresh["access_token"]) == 401
    assert userinfo_status(sandbox_bank, token["access_token"]) == 401


def test_other_grants_of_the_customer_survive_a_reuse(sandbox_bank):
    _, first = connect(sandbox_bank, username="alice")
    _, second = connect(sandbox_bank, username="alice")
    token_request(sandbox_bank, grant_type="refresh_token", refresh_token=first["refresh_token"])
    token_request(sandbox_bank, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert userinfo_status(sandbox_bank, second["access_token"]) == 200


def test_refresh_may_narrow_the_scope_but_never_widen_it(sandbox_bank):
    _, token = connect(sandbox_bank, scope="accounts transactions")
    narrowed = token_request(sandbox_bank, grant_type="refresh_token",
                             refresh_token=token["refresh_token"], scope="accounts")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "accounts"
    access = narrowed.json()["access_token"]
    assert api_get(f"{token['endpoint']}/transactions", access).status_code == 403
    # RFC 6749 §6: the new refresh token keeps the original grant's scope...
    full = token_request(sandbox_bank, grant_type="refresh_token",
                         refresh_token=narrowed.json()["refresh_token"])
    assert full.json()["scope"] == "accounts transactions"
    # ...and can never exceed it.
    wider = token_request(sandbox_bank, grant_type="refresh_token",
                          refresh_token=full.json()["refresh_token"],
                          scope="accounts balances")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    # A refused request does not burn the refresh token.
    still = token_request(sandbox_bank, grant_type="refresh_token",
                          refresh_token=full.json()["refresh_token"])
    assert still.status_code == 200


def test_a_refresh_token_is_only_good_at_its_own_institution(sandbox_bank):
    _, token = connect(sandbox_bank, "astoria")
    answer = token_request(sandbox_bank, "norma", grant_type="refresh_token",
                           refresh_token=token["refresh_token"])
    assert answer.json()["error"] == "invalid_grant"
    # The attempt elsewhere did not spend it.
    assert token_request(sandbox_bank, grant_type="refresh_token",
                         refresh_token=token["refresh_token"]).status_code == 200


def test_an_access_token_is_not_a_refresh_token(sandbox_bank):
    _, token = connect(sandbox_bank)
    answer = token_request(sandbox_bank, grant_type="refresh_token",
                           refresh_token=token["access_token"])
    assert answer.json()["error"] == "invalid_grant"


def test_revoking_an_access_token_leaves_the_refresh_token(sandbox_bank):
    _, token = connect(sandbox_bank)
    answer = revoke(sandbox_bank, token["access_token"], token_type_hint="access_token")
    assert answer.status_code == 200
    assert userinfo_status(sandbox_bank, token["access_token"]) == 401
    refreshed = token_request(sandbox_bank, grant_type="refresh_token",
                              refresh_token=token["refresh_token"])
    assert refreshed.status_code == 200


def test_revoking_the_refresh_token_ends_the_grant(sandbox_bank):
    client, token = connect(sandbox_bank)
    answer = client.revoke_token(f"{sandbox_bank.issuer('astoria')}/revoke",
                                 token=token["refresh_token"], token_type_hint="refresh_token")
    assert answer.status_code == 200
    assert userinfo_status(sandbox_bank, token["access_token"]) == 401
    refreshed = token_request(sandbox_bank, grant_type="refresh_token",
                              refresh_token=token["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"


def test_the_hint_is_only_a_hint(sandbox_bank):
    _, token = connect(sandbox_bank)
    # A wrong hint still finds the token (RFC 7009 §2.1), an unknown one is ignored.
    assert revoke(sandbox_bank, token["refresh_token"], token_type_hint="access_token").ok
    assert revoke(sandbox_bank, "x", token_type_hint="something_else").status_code == 200
    assert userinfo_status(sandbox_bank, token["access_token"]) == 401


def test_revoking_an_unknown_or_foreign_token_answers_200_and_changes_nothing(sandbox_bank):
    _, token = connect(sandbox_bank, "astoria")
    assert revoke(sandbox_bank, "no-such-token").status_code == 200
    assert revoke(sandbox_bank, token["access_token"], institution="monami").status_code == 200
    assert userinfo_status(sandbox_bank, token["access_token"]) == 200


def test_revocation_needs_client_authentication_and_a_token(sandbox_bank):
    _, token = connect(sandbox_bank)
    anonymous = requests.post(f"{sandbox_bank.issuer('astoria')}/revoke",
                              data={"token": token["access_token"]}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    missing = requests.post(f"{sandbox_bank.issuer('astoria')}/revoke", data={},
                            auth=(sandbox_bank.client_id, sandbox_bank.client_secret), timeout=10)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert userinfo_status(sandbox_bank, token["access_token"]) == 200


def test_concurrent_refreshes_with_one_token_count_as_reuse(sandbox_bank):
    _, token = connect(sandbox_bank)

    def refresh(_: int) -> requests.Response:
        return token_request(sandbox_bank, grant_type="refresh_token",
                             refresh_token=token["refresh_token"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(refresh, range(10)))
    # The token is spent once at most; the other nine are reuses, which revoke the grant, so
    # whatever the one winner got (if it beat the revocation) is dead as well.
    winners = [a.json() for a in answers if a.status_code == 200]
    assert len(winners) <= 1
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code != 200)
    for winner in winners:
        assert userinfo_status(sandbox_bank, winner["access_token"]) == 401
    assert userinfo_status(sandbox_bank, token["access_token"]) == 401
