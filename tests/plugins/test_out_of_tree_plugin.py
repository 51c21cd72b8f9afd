"""A plugin author's package, installed through its entry point, links an institution."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import requests
from flask import Flask

from aggregator.testing.plugin_contract import (
    PluginContract,
    as_registration,
    build_plugin,
    params_from_redirect,
)
from aggregator.testing.servers import serve_wsgi
from aggregator.upstream.contract import DATA_SCOPES, Institution, LinkedInstitution, Person
from aggregator.upstream.loader import load_class
from tests.fixtures.aggregator import PersonAgent

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "example-plugin"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """pip-install the example package into its own directory and put it on sys.path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PACKAGE)],
        check=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("example_plugin", None)
    importlib.invalidate_caches()


def _environ(bank) -> dict[str, str]:
    return {
        "issuer": bank.issuer("lastish"),
        "client_id": bank.client_id,
        "client_secret": bank.client_secret,
        "institution_name": "Lastish Fundco",
    }


def test_the_entry_point_is_discovered(installed_plugin):
    names = {entry.name for entry in entry_points(group="aggregator.plugins")}
    assert "example" in names
    assert load_class("example").display_name.startswith("Example bank")


def test_a_person_links_an_institution_through_the_example_plugin(installed_plugin, make_as,
                                                                   sandbox_bank):
    server = make_as(
        AGGREGATOR_PLUGINS="example",
        **{f"EXAMPLE_{key.upper()}": value for key, value in _environ(sandbox_bank).items()},
    )
    agent = PersonAgent(server.url)
    agent.signup("plugin-user")
    chooser = agent.http.get(agent.url("/connections/new")).text
    assert "Lastish Fundco" in chooser and 'name="provider" value="example"' in chooser
    start = agent.post_form("/connections/new", {"provider": "example", "institution": "main"},
                            form_page="/connections/new")
    assert start.status_code == 303
    callback = sandbox_bank.login_and_approve(start.headers["Location"], username="pat")
    done = agent.http.get(callback, allow_redirects=False)
    assert done.status_code == 303, done.text
    person = server.services.store.people.find_by_username("plugin-user")
    [registration] = server.services.store.registrations.list(person.id)
    assert (registration.provider, registration.institution_name, registration.status) == (
        "example", "Lastish Fundco", "ok")
    token = server.services.store.registrations.cached_token(person.id, registration.id, DATA_SCOPES)
    accounts = requests.get(registration.endpoint + "/accounts",
                            headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
    assert accounts.status_code == 200
    page = agent.http.get(agent.url("/connections")).text
    assert "Lastish Fundco" in page and "Example bank" in page


class TestExamplePluginContract(PluginContract):
    @pytest.fixture
    def plugin(self, installed_plugin, redis_url, sandbox_bank):
        return build_plugin(load_class("example"), "example", _environ(sandbox_bank), redis_url)

    @pytest.fixture
    def approve(self, sandbox_bank):
        return lambda link: params_from_redirect(sandbox_bank.login_and_approve(link.redirect_url))


def test_unlinking_at_a_bank_without_revocation_forgets_the_registration(installed_plugin,
                                                                         redis_url):
    """The contract: unlink succeeds when there is nothing to revoke upstream."""
    bank = Flask(__name__)
    asked: list[str] = []

    @bank.get("/.well-known/oauth-authorization-server")
    def metadata() -> dict:
        asked.append("metadata")
        url = server.url
        return {"issuer": url, "authorization_endpoint": f"{url}/authorize",
                "token_endpoint": f"{url}/token"}  # no revocation_endpoint

    with serve_wsgi(bank) as server:
        plugin = build_plugin(load_class("example"), "example",
                              {"issuer": server.url, "client_id": "c", "client_secret": "s"},
                              redis_url)
        person = Person("p1", "pat")
        linked = LinkedInstitution(Institution("main", "Example Bank"), "cust-1",
                                   f"{server.url}/users/cust-1", {"refresh_token": "rt-1"})
        plugin.unlink(as_registration(person, linked))
    assert asked == ["metadata"], "the plugin read the bank's metadata over HTTP"
