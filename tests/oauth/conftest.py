"""Fixtures: an AS open for registration, Nat, a person signed up at it, and Nat's banks."""

from __future__ import annotations

import pytest

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, seed_registration, signed_up


@pytest.fixture
def server(make_as) -> LiveAS:
    return make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)


@pytest.fixture
def nat(server) -> PersonAgent:
    """Nat, signed up and logged in at the AS."""
    return signed_up(server, "nat")


@pytest.fixture
def banks(server, nat):
    """Nat's two institutions: Bank of Astoria and Credit Union of Brill."""
    return (seed_registration(server, nat, "Bank of Astoria"),
            seed_registration(server, nat, "Credit Union of Brill"))
