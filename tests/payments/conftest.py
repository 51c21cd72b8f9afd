"""Fixtures: an AS with the sandbox plugin against a real sandbox bank, Nat with Bank of
Astoria connected through the pages, and a shop (Acme Ltd) that asks to be paid."""

from __future__ import annotations

import pytest

from tests.events.conftest import delivery_worker, receiver, receivers  # noqa: F401 - fixtures
from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.introspection.test_story import connect
from tests.oauth.apps import App, make_app, signed_up


@pytest.fixture
def server(sandbox_as) -> LiveAS:
    return sandbox_as


@pytest.fixture
def nat(server, sandbox_bank) -> PersonAgent:
    """Nat, signed up, with Bank of Astoria connected (as the bank's customer "nat")."""
    agent = signed_up(server, "nat")
    connect(agent, sandbox_bank, "astoria")
    return agent


@pytest.fixture
def shop(server) -> App:
    """Acme Ltd's shop: registered for payments (and to know who pays)."""
    return make_app(server, client_name="Acme Coffee", scope="openid payments")
