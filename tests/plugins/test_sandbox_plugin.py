"""The sandbox plugin against the real sandbox bank: the contract suite, then its particulars."""

from __future__ import annotations

import secrets

import pytest
import requests

from aggregator.testing.plugin_contract import (
    PluginContract,
    as_registration,
    build_plugin,
    params_from_redirect,
)
from aggregator.testing.servers import reserve_port
from aggregator.upstream.contract import (
    LinkInvalid,
    Person,
    ReauthRequired,
    UpstreamUnavailable,
)
from aggregator.upstream.loader import load_config
from plugins.sandbox.plugin import SandboxConfig, SandboxPlugin


def sandbox_plugin(bank, redis_url: str) -> SandboxPlugin:
    environ = {"url": bank.url, "client_id": bank.client_id, "client_secret": bank.client_secret}
    return build_plugin(SandboxPlugin, "sandbox", environ, redis_url)  # type: ignore[return-value]


@pytest.fixture
def plugin(sandbox_bank, redis_url):
    return sandbox_plugin(sandbox_bank, redis_url)


@pytest.fixture
def approve(sandbox_bank):
    def approve(link, username: str = "nat"):
        return params_from_redirect(sandbox_bank.login_and_approve(link.redirect_url,
                                                                   username=username))
    return approve


class TestSandboxContract(PluginContract):
    """Everything the core relies on, against the running bank."""


@pytest.fixture
def person() -> Person:
    return Person(id=secrets.token_hex(8), username="nat")


def link(plugin, person, approve, institution: str = "astoria", username: str = "nat",
         reconnect=None):
    state = secrets.token_urlsafe(16)
    start = plugin.begin_link(person, institution, state=state, reconnect=reconnect)
    return plugin.complete_link(person, approve(start, username), start.remember,
                                reconnect=reconnect)


def test_the_institutions_are_the_banks_own(plugin):
    assert [(i.id, i.name) for i in plugin.institutions()] == [
        ("astoria", "Bank of Astoria"), ("monami", "Monami Card"),
        ("norma", "Norma Securities"), ("lastish", "Lastish Fundco"),
    ]


def test_a_link_names_the_customer_and_their_api(plugin, person, approve, sandbox_bank):
    [linked] = link(plugin, person, approve, "monami", username="nat")
    assert linked.institution.name == "Monami Card"
    assert linked.endpoint == f"{sandbox_bank.url}/monami/users/{linked.external_id}"
    assert linked.metadata == {"issuer": sandbox_bank.issuer("monami"),
                               "scope": "accounts balances transactions"}
    assert set(linked.secrets) == {"refresh_token"}
    assert linked.token.scope == "accounts balances transactions"


def test_the_browser_goes_to_the_institutions_own_authorization_endpoint(plugin, person,
                                                                          sandbox_bank):
    start = plugin.begin_link(person, "norma", state="s")
    assert start.redirect_url.startswith(sandbox_bank.issuer("norma") + "/authorize?")
    assert "code_challenge_method=S256" in start.redirect_url
    assert "code_verifier" not in start.redirect_url
    assert "connections%2Fcallback%2Fsandbox" in start.redirect_url


def test_tokens_are_narrowed_to_the_data_asked_for(plugin, person, approve):
    registration = as_registration(person, link(plugin, person, approve)[0])
    result = plugin.access_token(registration, frozenset({"accounts:read"}))
    assert result.token.scope == "accounts"
    accounts = requests.get(registration.endpoint + "/accounts", timeout=10,
                            headers={"Authorization": f"Bearer {result.token.access_token}"})
    assert accounts.ok and all("balance" not in a for a in accounts.json()["data"])
    transactions = requests.get(registration.endpoint + "/transactions", timeout=10,
                                headers={"Authorization": f"Bearer {result.token.access_token}"})
    assert transactions.status_code == 403


def test_a_rotated_refresh_token_comes_back_as_new_secrets(plugin, person, approve):
    registration = as_registration(person, link(plugin, person, approve)[0])
    result = plugin.access_token(registration, frozenset({"accounts:read"}))
    assert result.secrets is not None
    assert result.secrets["refresh_token"] != registration.secrets["refresh_token"]
    # The old one is spent: using it again is a reuse, which the bank punishes.
    with pytest.raises(ReauthRequired):
        plugin.access_token(registration, frozenset({"accounts:read"}))


def test_without_rotation_the_secrets_stay(plugin, person, approve, sandbox_bank):
    registration = as_registration(person, link(plugin, person, approve)[0])
    sandbox_bank.admin.set_faults(rotate_refresh_tokens=False)
    assert plugin.access_token(registration, frozenset({"accounts:read"})).secrets is None
    assert plugin.access_token(registration, frozenset({"accounts:read"})).secrets is None


def test_a_grant_revoked_at_the_bank_needs_reauthentication(plugin, person, approve,
                                                           sandbox_bank):
    registration = as_registration(person, link(plugin, person, approve, username="nat")[0])
    sandbox_bank.admin.revoke("astoria", "nat")
    with pytest.raises(ReauthRequired):
        plugin.access_token(registration, frozenset({"accounts:read"}))


def test_an_outage_is_unavailable_not_reauth(plugin, person, approve, sandbox_bank):
    registration = as_registration(person, link(plugin, person, approve)[0])
    sandbox_bank.admin.set_faults(failure_rate=1.0)
    with pytest.raises(UpstreamUnavailable):
        plugin.access_token(registration, frozenset({"accounts:read"}))
    sandbox_bank.admin.set_faults(failure_rate=0.0)
    assert plugin.access_token(registration, frozenset({"accounts:read"})).token.access_token


def test_a_response_from_another_institution_is_refused(plugin, person, approve):
    """RFC 9207 mix-up defence: astoria's callback cannot complete a link started for monami."""
    state = secrets.token_urlsafe(16)
    started_for_monami = plugin.begin_link(person, "monami", state=state)
    astoria = plugin.begin_link(person, "astoria", state=state)
    params = approve(astoria)
    with pytest.raises(LinkInvalid):
        plugin.complete_link(person, params, started_for_monami.remember)


def test_reconnecting_as_another_customer_is_refused(plugin, person, approve):
    registration = as_registration(person, link(plugin, person, approve, username="nat")[0])
    with pytest.raises(LinkInvalid):
        link(plugin, person, approve, username="someone-else", reconnect=registration)
    again = link(plugin, person, approve, username="nat", reconnect=registration)
    assert again[0].external_id == registration.external_id


def test_an_unreachable_bank_is_unavailable(redis_url):
    plugin = build_plugin(SandboxPlugin, "sandbox",
                          {"url": f"http://127.0.0.1:{reserve_port()}"}, redis_url)
    with pytest.raises(UpstreamUnavailable):
        plugin.institutions()


def test_configuration_defaults_follow_the_bank():
    assert SandboxConfig().load({}) == {
        "url": "http://127.0.0.1:8001", "public_url": None, "port": 8001,
        "client_id": "aggregator", "client_secret": "sandbox-secret",
    }
    assert SandboxConfig().load({"port": "9001"})["url"] == "http://127.0.0.1:9001"
    assert SandboxConfig().load({"public_url": "http://localhost:9002/"})["url"] == (
        "http://localhost:9002"
    )
    # the bank's own SANDBOX_* variables are left out by the loader
    assert load_config(SandboxPlugin, {"url": "http://127.0.0.1:7000", "redis_url": "x"})["url"] == (
        "http://127.0.0.1:7000"
    )
