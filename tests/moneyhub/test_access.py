"""Apps get Moneyhub data tokens through the plugin; connections age, break, heal and go."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from aggregator.upstream.contract import (
    DATA_SCOPES,
    ConsentExpired,
    ReauthRequired,
    UpstreamError,
    UpstreamUnavailable,
)
from plugins.moneyhub.data_scopes import moneyhub_scopes
from tests.moneyhub.journeys import approve, begin, link, person, registration

MODELO = "b9be1fc1e54ae6d4229967411dc28545"
TEST_BANK = "235bd1c410e96b29dd34aa751d5cb054"


def get(endpoint: str, path: str, token: str) -> requests.Response:
    return requests.get(f"{endpoint}{path}", headers={"Authorization": f"Bearer {token}"},
                        timeout=10)


@pytest.fixture
def linked(make_plugin):
    """A person with one Modelo connection through an uncached-status plugin."""
    plugin, alex = make_plugin(status_ttl=0), person()
    item = link(plugin, alex, MODELO)[0]
    return plugin, alex, registration(alex, item)


# ------------------------------------------------------------------------ data tokens


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        ({"accounts:read"}, ("accounts:read",)),
        ({"balances:read"}, ("accounts:read",)),
        ({"transactions:read"}, ("transactions:read:all",)),
        (set(DATA_SCOPES), ("accounts:read", "transactions:read:all")),
    ],
)
def test_data_scope_mapping_is_least_privilege(scopes, expected):
    assert moneyhub_scopes(scopes) == expected


def test_a_data_token_reads_the_persons_accounts_and_transactions(linked, moneyhub_fake):
    plugin, _, reg = linked
    result = plugin.access_token(reg, DATA_SCOPES)
    assert result.token.fresh_for(60)
    assert result.secrets is None
    request = moneyhub_fake.controls.token_requests("client_credentials")[-1]
    assert request.form["scope"] == "accounts:read transactions:read:all"
    assert request.form["sub"] == reg.metadata["moneyhub_user_id"]
    accounts = get(reg.endpoint, "/accounts", result.token.access_token)
    assert accounts.status_code == 200
    assert {a["connectionId"] for a in accounts.json()["data"]} == {reg.external_id}
    assert get(reg.endpoint, "/transactions", result.token.access_token).json()["data"]


def test_a_balances_only_grant_cannot_read_transactions(linked):
    plugin, _, reg = linked
    token = plugin.access_token(reg, frozenset({"balances:read"})).token.access_token
    assert get(reg.endpoint, "/accounts", token).status_code == 200
    assert get(reg.endpoint, "/transactions", token).status_code == 403


def test_each_registration_has_its_own_moneyhub_user_and_token(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    first = registration(alex, link(plugin, alex, MODELO)[0], "r1")
    second = registration(alex, link(plugin, alex, TEST_BANK)[0], "r2")
    assert first.metadata["moneyhub_user_id"] != second.metadata["moneyhub_user_id"]
    assert first.share_group is None and second.share_group is None
    one = plugin.access_token(first, DATA_SCOPES).token
    two = plugin.access_token(second, DATA_SCOPES).token
    assert one.access_token != two.access_token
    for reg, token in ((first, one), (second, two)):
        accounts = get(reg.endpoint, "/accounts", token.access_token).json()["data"]
        assert {a["connectionId"] for a in accounts} == {reg.external_id}, (
            "a registration's token reaches its own connection and nothing else"
        )


def test_a_data_token_is_renewed_near_its_expiry(make_plugin, moneyhub_fake):
    now = [time.time()]
    plugin, alex = make_plugin(clock=lambda: now[0]), person()
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    first = plugin.access_token(reg, DATA_SCOPES).token
    now[0] += 600 - 100  # the fake's tokens live 600 s; within the 120 s margin now
    second = plugin.access_token(reg, DATA_SCOPES).token
    assert second.access_token != first.access_token


def test_a_held_refresh_token_is_used_and_a_rotated_one_returned(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(offline_access="true", status_ttl=0), person()
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    assert reg.secrets["refresh_token"]
    assert plugin.access_token(reg, DATA_SCOPES).secrets is None
    assert len(moneyhub_fake.controls.token_requests("refresh_token")) == 1

    moneyhub_fake.controls.rotate_refresh_tokens()
    rotated = plugin.access_token(reg, DATA_SCOPES).secrets
    assert rotated and rotated["refresh_token"] != reg.secrets["refresh_token"]


def test_a_revoked_refresh_grant_needs_the_person(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(offline_access="true", status_ttl=0), person()
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    moneyhub_fake.controls.fail("oidc.token", 400, error="invalid_grant")
    with pytest.raises(ReauthRequired, match="grant"):
        plugin.access_token(reg, DATA_SCOPES)


def test_moneyhub_down_is_unavailable_not_a_broken_registration(linked, moneyhub_fake):
    plugin, _, reg = linked
    moneyhub_fake.controls.fail("oidc.token", 503)
    with pytest.raises(UpstreamUnavailable):
        plugin.access_token(reg, DATA_SCOPES)
    moneyhub_fake.controls.fail("users.list_connections", 500)
    with pytest.raises(UpstreamUnavailable):
        plugin.access_token(reg, DATA_SCOPES)


def test_no_token_without_a_data_scope(linked):
    plugin, _, reg = linked
    with pytest.raises(UpstreamError, match="data scope"):
        plugin.access_token(reg, frozenset())


# ------------------------------------------------------------------------ statuses


@pytest.mark.parametrize(
    ("status", "error", "ours", "raised"),
    [
        ("error", "resync", "reauth_required", ReauthRequired),
        ("error", "mfa_required", "reauth_required", ReauthRequired),
        ("error", "credentials_error", "reauth_required", ReauthRequired),
        ("error", "sync_error", "ok", None),
        ("error", "sync_partial", "ok", None),
        ("error", "something_new", "error", UpstreamError),
    ],
)
def test_moneyhub_connection_errors_map_onto_registration_statuses(
    linked, moneyhub_fake, status, error, ours, raised
):
    plugin, _, reg = linked
    moneyhub_fake.controls.set_connection_status(reg.external_id, status, error)
    report = plugin.status(reg)
    assert report.status == ours
    assert report.error, "the person is told what happened"
    if raised is None:
        assert plugin.access_token(reg, DATA_SCOPES).token.access_token
    else:
        with pytest.raises(raised) as caught:
            plugin.access_token(reg, DATA_SCOPES)
        assert caught.value.status == ours


def test_an_expired_consent_is_expired(linked, moneyhub_fake):
    plugin, _, reg = linked
    moneyhub_fake.controls.expire_connection(reg.external_id)
    assert plugin.status(reg).status == "expired"
    with pytest.raises(ConsentExpired):
        plugin.access_token(reg, DATA_SCOPES)


def test_a_healthy_connection_reports_its_consent_end(linked, moneyhub_fake):
    plugin, _, reg = linked
    ends = datetime.now(UTC) + timedelta(days=10)
    moneyhub_fake.controls.set_connection_status(reg.external_id, "ok", expires_at=ends)
    report = plugin.status(reg)
    assert (report.status, report.error) == ("ok", None)
    assert report.consent_expires_at == int(ends.timestamp())


def test_a_connection_deleted_at_moneyhub_needs_the_person(linked, moneyhub_fake):
    plugin, _, reg = linked
    moneyhub_fake.controls.delete_connection(reg.external_id)
    assert plugin.status(reg).status == "reauth_required"
    with pytest.raises(ReauthRequired, match="no longer exists"):
        plugin.access_token(reg, DATA_SCOPES)


def test_statuses_are_cached_briefly_but_a_token_is_released_on_a_fresh_look(make_plugin,
                                                                             moneyhub_fake):
    plugin, alex = make_plugin(), person()  # default: a user's connection list lives 30 s
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    plugin.status(reg)
    plugin.status(reg)
    assert len(moneyhub_fake.controls.requests("users.list_connections")) == 1
    plugin.access_token(reg, DATA_SCOPES)
    assert len(moneyhub_fake.controls.requests("users.list_connections")) == 2, (
        "what the token reaches is checked against Moneyhub, not a cached list"
    )


# ------------------------------------------------------------------------ reconnect and remove


@pytest.mark.parametrize(
    ("break_it", "journey"),
    [
        (lambda c, cid: c.set_connection_status(cid, "error", "credentials_error"), "refresh"),
        (lambda c, cid: c.set_connection_status(cid, "error", "mfa_required"), "refresh"),
        (lambda c, cid: c.expire_connection(cid), "reauth"),
    ],
)
def test_reconnect_runs_moneyhubs_refresh_or_reauth_journey(linked, moneyhub_fake, break_it,
                                                            journey):
    plugin, alex, reg = linked
    break_it(moneyhub_fake.controls, reg.external_id)
    start, remember, _ = begin(plugin, alex, reg.institution.id, reconnect=reg)
    pushed = moneyhub_fake.controls.pushed_requests()[-1]
    assert pushed.scopes == ("openid", journey)
    assert pushed.response_type == "id_token"
    assert pushed.connection_id == reg.external_id
    renewed = plugin.complete_link(alex, approve(start), remember, reconnect=reg)
    assert [r.external_id for r in renewed] == [reg.external_id]
    assert renewed[0].share_group is None
    assert renewed[0].metadata == reg.metadata, "the same Moneyhub user, still its own"
    assert plugin.status(reg).status == "ok"
    assert plugin.access_token(reg, DATA_SCOPES).token.access_token


def test_reconnect_keeps_the_refresh_token(make_plugin):
    plugin, alex = make_plugin(offline_access="true"), person()
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    renewed = link(plugin, alex, MODELO, reconnect=reg)[0]
    assert renewed.secrets == reg.secrets


def test_unlink_deletes_the_registrations_moneyhub_user_and_connection(linked, moneyhub_fake):
    plugin, _, reg = linked
    user_id = reg.metadata["moneyhub_user_id"]
    plugin.unlink(reg)
    assert moneyhub_fake.controls.connection(reg.external_id) is None
    assert moneyhub_fake.controls.user(user_id) is None
    deletes = moneyhub_fake.controls.requests("users.delete_user")
    assert deletes[0].path.endswith(f"/users/{user_id}")
    plugin.unlink(reg)  # already gone
    with pytest.raises(ReauthRequired):
        plugin.access_token(reg, DATA_SCOPES)


def test_unlink_failing_at_moneyhub_is_reported(linked, moneyhub_fake):
    plugin, _, reg = linked
    moneyhub_fake.controls.fail("users.delete_user", 503)
    with pytest.raises(UpstreamUnavailable):
        plugin.unlink(reg)
    assert moneyhub_fake.controls.connection(reg.external_id) is not None
