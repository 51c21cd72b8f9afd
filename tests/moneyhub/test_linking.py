"""A person links banks through Moneyhub: the chooser, their Moneyhub profile, PAR, callbacks.

Every refusal is a typed error raised before the core would store anything; the fake's request
log shows what reached Moneyhub.
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from aggregator.upstream.contract import (
    InvalidLinkOptions,
    LinkDenied,
    LinkInvalid,
    UpstreamError,
    UpstreamUnavailable,
)
from plugins.moneyhub.authorization import AuthorizationRequest, Consent
from tests.fixtures.moneyhub import MoneyhubFake
from tests.moneyhub.conftest import ISSUER
from tests.moneyhub.journeys import approve, begin, link, person, registration

MODELO = "b9be1fc1e54ae6d4229967411dc28545"
TEST_BANK = "235bd1c410e96b29dd34aa751d5cb054"
NATIONWIDE = "49afef18908737d682a555dbbe03b830"
CALLBACK = f"{ISSUER}/connections/callback/moneyhub"


def header_of(token: str) -> dict:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def upstream_calls(fake: MoneyhubFake, *endpoints: str) -> int:
    return sum(len(fake.controls.requests(endpoint)) for endpoint in endpoints)


# ------------------------------------------------------------------------ the chooser


def test_institutions_are_the_configured_list_plus_moneyhubs_own_chooser(make_plugin,
                                                                        moneyhub_fake):
    plugin = make_plugin()
    institutions = plugin.institutions()
    assert [i.name for i in institutions] == [
        "Modelo Open Banking Mock", "Moneyhub Test Bank (legacy)",
        "Moneyhub test banks (choose at Moneyhub)",
    ]
    modelo = institutions[0]
    assert modelo.id == MODELO
    assert modelo.icon_url == f"{moneyhub_fake.identity_url}/bank-icons/modelo?defaultIcon=true"
    assert institutions[-1].id == "test"
    plugin.institutions()
    assert upstream_calls(moneyhub_fake, "oidc.connections") == 1, "the list is cached"


def test_api_connection_type_lists_open_banking_banks(make_plugin):
    names = [i.name for i in make_plugin(connection_type="api").institutions()]
    assert "HSBC Credit Cards" in names and "Modelo Open Banking Mock" not in names


def test_an_unreachable_bank_list_is_unavailable(make_plugin, moneyhub_fake):
    moneyhub_fake.controls.fail("oidc.connections", 503)
    with pytest.raises(UpstreamUnavailable):
        make_plugin().institutions()


# ------------------------------------------------------------------------ Moneyhub users


def test_every_link_gets_a_moneyhub_user_of_its_own(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person("alex")
    first = link(plugin, alex, MODELO)[0]
    second = link(plugin, alex, TEST_BANK)[0]
    created = moneyhub_fake.controls.requests("users.create_user")
    assert [r.json for r in created] == [{"clientUserId": alex.id}] * 2
    users = moneyhub_fake.controls.users()
    assert len(users) == 2 and {u.client_user_id for u in users} == {alex.id}
    assert first.metadata["moneyhub_user_id"] != second.metadata["moneyhub_user_id"]
    for item in (first, second):
        assert item.share_group is None, "its token reaches this registration only"
        assert [c.id for c in moneyhub_fake.controls.connections(
            item.metadata["moneyhub_user_id"])] == [item.external_id]


def test_deleting_a_person_deletes_their_moneyhub_user(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    link(plugin, alex, MODELO)
    plugin.forget_person(alex)
    assert moneyhub_fake.controls.users() == []
    plugin.forget_person(alex)  # nothing left: still fine
    assert len(moneyhub_fake.controls.requests("users.delete_user")) == 1


# ------------------------------------------------------------------------ linking


def test_code_flow_with_client_secret_basic(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin("basic"), person()
    start, remember, state = begin(plugin, alex, MODELO)

    query = parse_qs(urlsplit(start.redirect_url).query)
    assert set(query) == {"client_id", "request_uri"}, "RFC 9126 §4: nothing else in the URL"
    pushed = moneyhub_fake.controls.pushed_requests()[0]
    sent = pushed.request_object
    assert header_of(moneyhub_fake.controls.requests("oidc.par")[0].form["request"])["alg"] == "HS256"
    assert sent["scope"] == f"openid id:{MODELO}"
    assert sent["redirect_uri"] == CALLBACK
    assert sent["state"] == state and sent["nonce"] == remember["nonce"]
    assert sent["prompt"] == "consent"
    assert sent["code_challenge_method"] == "S256"
    assert sent["claims"] == {"id_token": {
        "sub": {"essential": True, "value": remember["user_id"]},
        "mh:con_id": {"essential": True},
    }}
    assert (sent["iss"], sent["aud"]) == (moneyhub_fake.basic_client.client_id,
                                          moneyhub_fake.issuer)
    assert "mh:consent" not in sent["claims"]["id_token"], "Moneyhub's defaults unless configured"

    linked = plugin.complete_link(alex, approve(start), remember)
    assert len(linked) == 1
    item = linked[0]
    connection = moneyhub_fake.controls.connections(remember["user_id"])[0]
    assert item.external_id == connection.id
    assert item.institution.id == MODELO
    assert item.institution.name == "Modelo Open Banking Mock"
    assert item.endpoint == moneyhub_fake.data_api_url
    assert item.secrets == {}, "no refresh token without offline_access"
    assert item.metadata["bank_ref"] == "modelo"
    assert item.consent_expires_at == int(connection.expires_at.timestamp())
    token_request = moneyhub_fake.controls.token_requests("authorization_code")[0]
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert token_request.form["code_verifier"] == remember["code_verifier"]


def test_hybrid_flow_with_private_key_jwt_and_form_post(make_plugin, moneyhub_fake):
    plugin = make_plugin("jwt", response_type="code id_token", connection_type="api")
    alex = person()
    start, remember, _ = begin(plugin, alex, NATIONWIDE)
    par = moneyhub_fake.controls.requests("oidc.par")[0]
    jwk = moneyhub_fake.jwt_client.private_jwks["keys"][0]
    assert header_of(par.form["request"]) == {"alg": "PS256", "kid": jwk["kid"], "typ": "JWT"}
    assert par.form["client_assertion_type"].endswith("jwt-bearer")
    assert "Authorization" not in par.headers

    params = approve(start)
    assert {"code", "id_token", "state"} <= set(params)
    item = plugin.complete_link(alex, params, remember)[0]
    assert item.institution.name == "Nationwide Open Banking"
    token_request = moneyhub_fake.controls.token_requests("authorization_code")[0]
    assert "client_assertion" in token_request.form


def test_moneyhubs_chooser_links_whichever_bank_the_person_picks(make_plugin, moneyhub_fake):
    plugin = make_plugin()
    moneyhub_fake.controls.choose_bank(TEST_BANK)
    item = link(plugin, person(), "test")[0]
    assert moneyhub_fake.controls.pushed_requests()[0].scopes == ("openid", "id:test")
    assert item.institution.id == TEST_BANK
    assert item.institution.name == "Moneyhub Test Bank (legacy)"


def test_configured_consent_and_category_are_requested(make_plugin, moneyhub_fake):
    plugin = make_plugin(consent_days=30, history_months=12, category_type="business",
                         permissions="ReadAccountsDetail,ReadTransactionsDebits,ReadBalances",
                         permissions_action="replace", offline_access="true")
    item = link(plugin, person(), MODELO)[0]
    pushed = moneyhub_fake.controls.pushed_requests()[0]
    assert pushed.scopes == ("openid", "offline_access", f"id:{MODELO}")
    assert pushed.cat_type == "business"
    assert pushed.permissions == {"ReadAccountsDetail", "ReadTransactionsDebits", "ReadBalances"}
    assert abs(item.consent_expires_at - (time.time() + 30 * 86400)) < 120
    assert item.secrets["refresh_token"], "offline_access with prompt=consent"


def test_linking_the_same_connection_again_keeps_its_external_id(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    item = link(plugin, alex, MODELO)[0]
    again = link(plugin, alex, MODELO, reconnect=registration(alex, item))[0]
    assert again.external_id == item.external_id
    assert len(moneyhub_fake.controls.connections(item.metadata["moneyhub_user_id"])) == 1


# ------------------------------------------------------------------------ refused before sending


def request_for(user: str = "5f0c0ffee0c0ffee0c0ffee0", **overrides) -> AuthorizationRequest:
    values = {"scopes": ("openid", f"id:{MODELO}"), "user_id": user, "response_type": "code"}
    values.update(overrides)
    return AuthorizationRequest(**values)


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (request_for(scopes=("openid", "id:test", f"id:{MODELO}")), "Exactly one"),
        (request_for(scopes=("openid",)), "Exactly one"),
        (request_for(scopes=(f"id:{MODELO}",)), "openid"),
        (request_for(scopes=("openid", "id:test", "accounts:read")), "Unexpected"),
        (request_for(scopes=("openid", "reauth", "offline_access"), connection_id="b:c"),
         "nothing else"),
        (request_for(scopes=("openid", "refresh")), "connection id"),
        (request_for(consent=Consent(expiration=in_days(91))), "at most 90 days"),
        (request_for(consent=Consent(expiration=in_days(-1))), "future"),
        (request_for(consent=Consent(transaction_from=in_days(-365 * 6 - 40))), "72 months"),
        (request_for(consent=Consent(transaction_from=in_days(1))), "future"),
        (request_for(consent=Consent(permissions=("ReadBalances",), permissions_action="replace")),
         "ReadAccountsBasic or ReadAccountsDetail"),
        (request_for(consent=Consent(permissions=("ReadAccountsBasic", "ReadTransactionsDetail"),
                                     permissions_action="replace")),
         "ReadTransactionsCredits or ReadTransactionsDebits"),
        (request_for(consent=Consent(permissions=("ReadMinds",))), "Unknown Moneyhub permission"),
        (request_for(category_type="household"), "personal or business"),
    ],
)
def test_requests_breaking_moneyhubs_rules_never_leave(make_plugin, moneyhub_fake, request_,
                                                       message):
    plugin = make_plugin()
    with pytest.raises(InvalidLinkOptions, match=message):
        plugin.start(request_, state="s")
    assert upstream_calls(moneyhub_fake, "oidc.par", "oidc.token", "users.create_user") == 0


def test_an_unknown_institution_is_refused_before_a_user_is_created(make_plugin, moneyhub_fake):
    plugin = make_plugin()
    for institution in ("no-such-bank", NATIONWIDE, "id:test id:api", "api"):
        with pytest.raises(InvalidLinkOptions):
            plugin.begin_link(person(), institution, state="s")
    assert upstream_calls(moneyhub_fake, "oidc.par", "users.create_user") == 0


# ------------------------------------------------------------------------ callbacks that fail


@pytest.mark.parametrize(
    ("fault", "channel", "message"),
    [
        ("signature", "authorization", "signature"),
        ("signature", "token", "signature"),
        ("nonce", "authorization", "nonce"),
        ("nonce", "token", "nonce"),
        ("c_hash", "authorization", "c_hash"),
        ("s_hash", "authorization", "s_hash"),
        ("at_hash", "token", "at_hash"),
        ("aud", "token", "another client"),
        ("iss", "authorization", "issuer"),
        ("expired", "token", "expired"),
        ("sub", "token", "another user"),
    ],
)
def test_id_tokens_that_do_not_verify_are_refused(make_plugin, moneyhub_fake, fault, channel,
                                                 message):
    plugin, alex = make_plugin("jwt", response_type="code id_token"), person()
    start, remember, _ = begin(plugin, alex, MODELO)
    moneyhub_fake.controls.corrupt_id_tokens(fault, channel=channel)
    params = approve(start)
    with pytest.raises(LinkInvalid, match=message):
        plugin.complete_link(alex, params, remember)
    if channel == "authorization":
        assert moneyhub_fake.controls.token_requests("authorization_code") == [], (
            "the code is not redeemed when the front-channel id_token fails"
        )


def test_a_renewal_naming_another_connection_is_refused(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    item = link(plugin, alex, MODELO)[0]
    moneyhub_fake.controls.corrupt_id_tokens("con_id")
    with pytest.raises(LinkInvalid, match="another connection"):
        link(plugin, alex, MODELO, reconnect=registration(alex, item))


def test_a_code_callback_with_a_hybrid_configuration_needs_the_id_token(make_plugin):
    plugin, alex = make_plugin("jwt", response_type="code id_token"), person()
    start, remember, state = begin(plugin, alex, MODELO)
    params = approve(start)
    with pytest.raises(LinkInvalid, match="no id_token"):
        plugin.complete_link(alex, {"code": params["code"], "state": state}, remember)


def test_a_replayed_code_is_refused(make_plugin):
    plugin, alex = make_plugin(), person()
    start, remember, _ = begin(plugin, alex, MODELO)
    params = approve(start)
    plugin.complete_link(alex, params, remember)
    with pytest.raises(LinkInvalid, match="invalid_grant"):
        plugin.complete_link(alex, params, remember)


def test_a_refusal_at_the_bank_is_denied(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    moneyhub_fake.controls.deny_authorization()
    start, remember, _ = begin(plugin, alex, MODELO)
    with pytest.raises(LinkDenied, match="refused"):
        plugin.complete_link(alex, approve(start), remember)


@pytest.mark.parametrize(
    ("error", "raised"),
    [("server_error", UpstreamUnavailable), ("temporarily_unavailable", UpstreamUnavailable),
     ("invalid_request", LinkInvalid)],
)
def test_other_authorization_errors(make_plugin, moneyhub_fake, error, raised):
    plugin, alex = make_plugin(), person()
    moneyhub_fake.controls.deny_authorization(error, "something happened")
    start, remember, _ = begin(plugin, alex, MODELO)
    with pytest.raises(raised, match="something happened"):
        plugin.complete_link(alex, approve(start), remember)


# ------------------------------------------------------------------------ Moneyhub failing


@pytest.mark.parametrize(
    ("endpoint", "status", "raised", "message"),
    [
        ("oidc.discovery", 503, UpstreamUnavailable, "HTTP 503"),
        ("users.create_user", 500, UpstreamUnavailable, "HTTP 500"),
        ("oidc.par", 502, UpstreamUnavailable, "HTTP 502"),
        ("oidc.par", 400, UpstreamError, "start the connection"),
        ("oidc.token", 401, UpstreamError, "refused"),
    ],
)
def test_moneyhub_errors_when_starting_are_clear(make_plugin, moneyhub_fake, endpoint, status,
                                                 raised, message):
    plugin = make_plugin()
    moneyhub_fake.controls.fail(endpoint, status, error="invalid_client" if status == 401
                                else "invalid_request", times=None)
    with pytest.raises(raised, match=message) as caught:
        plugin.begin_link(person(), MODELO, state="s")
    assert "Traceback" not in caught.value.description


def test_moneyhub_refusing_our_redirect_uri_is_explained(make_plugin, moneyhub_fake):
    plugin = make_plugin()
    moneyhub_fake.controls.reset()  # forget the registered callback URL
    with pytest.raises(UpstreamError, match="redirect_uri"):
        plugin.begin_link(person(), MODELO, state="s")


@pytest.mark.parametrize(("status", "raised"), [(503, UpstreamUnavailable), (400, LinkInvalid)])
def test_moneyhub_errors_at_the_code_exchange(make_plugin, moneyhub_fake, status, raised):
    plugin, alex = make_plugin(), person()
    start, remember, _ = begin(plugin, alex, MODELO)
    params = approve(start)
    moneyhub_fake.controls.fail("oidc.token", status, error="invalid_grant")
    with pytest.raises(raised):
        plugin.complete_link(alex, params, remember)


def test_rotated_moneyhub_keys_are_fetched_again(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin("jwt", response_type="code id_token"), person()
    link(plugin, alex, MODELO)
    cached = plugin.identity.jwks()
    plugin.context.cache.set(f"jwks:{plugin.identity.issuer}",
                             {"keys": [dict(cached["keys"][0], kid="old-key")]})
    link(plugin, alex, TEST_BANK)  # the id_token's kid is unknown: fetched again, verifies
    assert len(moneyhub_fake.controls.requests("oidc.jwks")) == 2


def test_concurrent_links_each_get_their_own_moneyhub_user(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    with ThreadPoolExecutor(max_workers=4) as pool:
        starts = list(pool.map(lambda _: begin(plugin, alex, MODELO), range(4)))
    assert len({remember["user_id"] for _, remember, _ in starts}) == 4
    assert len(moneyhub_fake.controls.users()) == 4


def test_a_link_survives_moneyhub_failing_to_describe_it(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(consent_days=20), person()
    start, remember, _ = begin(plugin, alex, MODELO)
    params = approve(start)
    moneyhub_fake.controls.fail("users.list_connections", 503)
    item = plugin.complete_link(alex, params, remember)[0]
    assert item.institution.name == "Modelo Open Banking Mock"
    assert abs(item.consent_expires_at - (time.time() + 20 * 86400)) < 120, "what we asked for"
