"""The federation plugin against a real aggregator A on 127.0.0.1: the contract kit, then what
is particular to federating (one registration per institution there, removal, statuses)."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests

from aggregator.introspection.response import RECENT_SECONDS
from aggregator.testing.plugin_contract import (
    PluginContract,
    as_registration,
    build_plugin,
    params_from_redirect,
)
from aggregator.upstream.contract import DATA_SCOPES, Person, ReauthRequired
from plugins.federation.plugin import FederationPlugin
from tests.federation.conftest import consent_at_a, register_downstream
from tests.oauth.apps import new_key

#: the issuer ``build_plugin`` gives the plugin's context (B, which does not run here)
DOWNSTREAM = "http://127.0.0.1:8000"


@pytest.fixture
def plugin(upstream, nat_at_a, redis_url) -> FederationPlugin:
    client = register_downstream(upstream, DOWNSTREAM)
    environ = {"issuer": upstream.url, "client_id": client.client_id,
               "client_secret": client.secret, "name": "Nat's aggregator"}
    return build_plugin(FederationPlugin, "federation", environ, redis_url)  # type: ignore[return-value]


@pytest.fixture
def approve(nat_at_a):
    return lambda link: params_from_redirect(consent_at_a(nat_at_a, link.redirect_url).headers["Location"])


class TestFederationContract(PluginContract):
    """Everything the core relies on, against aggregator A."""


def link(plugin: FederationPlugin, person: Person, approve) -> list:
    state = secrets.token_urlsafe(16)
    start = plugin.begin_link(person, "account", state=state)
    return plugin.complete_link(person, approve(start), json.loads(json.dumps(start.remember)))


@pytest.fixture
def person() -> Person:
    return Person(id=secrets.token_hex(8), username="nat-at-b")


def a_grants(upstream, nat_at_a) -> list:
    svc = upstream.services
    return svc.store.grants.for_person(svc.store.people.find_by_username("nat").id)


def test_one_link_brings_every_institution_granted_there(plugin, person, approve, upstream):
    linked = link(plugin, person, approve)

    assert sorted(item.institution.name for item in linked) == ["Bank of Astoria", "Monami Card"]
    for item in linked:
        assert item.share_group is None  # each token reaches its own institution only
        assert item.metadata["upstream_provider"] == "sandbox"
        assert item.token is not None and item.endpoint.startswith(upstream.services.plugins[
            "sandbox"].bank_url)
    # the PAR request, not the parameters, travelled in the browser (RFC 9126)
    start = plugin.begin_link(person, "account", state="s")
    assert "request_uri=" in start.redirect_url and "code_challenge" not in start.redirect_url


def test_each_registration_gets_its_own_institutions_token(plugin, person, approve):
    linked = {item.institution.name: item for item in link(plugin, person, approve)}
    for name, item in linked.items():
        result = plugin.access_token(as_registration(person, item), frozenset({"accounts:read"}))
        answer = requests.get(f"{item.endpoint}/accounts", timeout=10,
                              headers={"Authorization": f"Bearer {result.token.access_token}"})
        assert answer.status_code == 200 and answer.json()["data"][0]["providerName"] == name
        # narrowed to the data asked for: no transactions with an accounts-only token
        assert requests.get(f"{item.endpoint}/transactions", timeout=10, headers={
            "Authorization": f"Bearer {result.token.access_token}"}).status_code == 403


def test_the_grant_at_a_ends_only_with_the_links_last_registration(
        plugin, person, approve, upstream, nat_at_a):
    first, second = (as_registration(person, item, f"r{n}")
                     for n, item in enumerate(link(plugin, person, approve)))
    assert len(a_grants(upstream, nat_at_a)) == 1

    plugin.unlink(first)
    assert len(a_grants(upstream, nat_at_a)) == 1
    assert plugin.access_token(second, DATA_SCOPES).token.access_token
    with pytest.raises(ReauthRequired):
        plugin.access_token(first, DATA_SCOPES)

    plugin.unlink(second)
    assert a_grants(upstream, nat_at_a) == []  # Grant Management at A ended it
    assert plugin.status(second).status == "reauth_required"


def test_revoking_b_at_a_shows_as_reauth_required(plugin, person, approve, upstream, nat_at_a):
    registration = as_registration(person, link(plugin, person, approve)[0])
    assert plugin.status(registration).status == "ok"
    [grant] = a_grants(upstream, nat_at_a)

    answer = nat_at_a.post_form(f"/apps/{grant.id}/revoke", {}, form_page="/")
    assert answer.status_code in (200, 302, 303), answer.text

    report = plugin.status(registration)
    assert report.status == "reauth_required" and report.error


def test_a_status_at_a_is_the_status_here(plugin, person, approve, upstream, sandbox_bank):
    linked = {item.institution.name: item for item in link(plugin, person, approve)}
    astoria = as_registration(person, linked["Bank of Astoria"])
    sandbox_bank.admin.revoke("astoria", "nat")  # the bank ends A's connection
    svc = upstream.services
    a_person = svc.store.people.find_by_username("nat")
    [at_a] = [r for r in svc.store.registrations.list(a_person.id) if r.institution_name == "Bank of Astoria"]
    svc.store.registrations.set_status(at_a, "reauth_required", "The bank ended the connection.")
    time.sleep(RECENT_SECONDS + 0.1)  # A's workers reuse an all-ok answer for up to a second

    report = plugin.status(astoria)

    assert report.status == "reauth_required" and "The bank ended the connection." in report.error
    assert plugin.status(as_registration(person, linked["Monami Card"])).status == "ok"


def test_a_reconnect_retires_the_old_links_tokens_at_a(plugin, person, approve, upstream, nat_at_a):
    old = as_registration(person, link(plugin, person, approve)[0])
    old_refresh_token = plugin._state(person.id, old.metadata["link"])["refresh_token"]
    at_a = plugin.upstream(upstream.url)
    assert at_a.introspect(old_refresh_token)["active"] is True
    state = secrets.token_urlsafe(16)

    start = plugin.begin_link(person, old.institution.id, state=state, reconnect=old)
    relinked = plugin.complete_link(person, approve(start), json.loads(json.dumps(start.remember)),
                                    reconnect=old)

    [renewed] = [item for item in relinked if item.external_id == old.external_id]
    assert renewed.metadata["link"] != old.metadata["link"]
    assert at_a.introspect(old_refresh_token) == {"active": False}  # revoked at A
    assert len(a_grants(upstream, nat_at_a)) == 1  # A kept one grant for B, now the new link's
    assert plugin.access_token(as_registration(person, renewed), DATA_SCOPES).token.access_token
    with pytest.raises(ReauthRequired):
        plugin.access_token(old, DATA_SCOPES)


def test_private_key_jwt_at_a(upstream, nat_at_a, redis_url, person, approve):
    key = new_key("EC")
    client = register_downstream(upstream, DOWNSTREAM, key=key)
    environ = {"issuer": upstream.url, "client_id": client.client_id,
               "auth_method": "private_key_jwt",
               "private_jwks": json.dumps({"keys": [key.as_dict(private=True)]})}
    plugin = build_plugin(FederationPlugin, "federation", environ, redis_url)

    linked = link(plugin, person, approve)  # type: ignore[arg-type]

    assert plugin.access_token(as_registration(person, linked[0]), DATA_SCOPES).token.access_token
