"""Fixtures: an AS open for registration, and Nat, a person signed up at it."""

from __future__ import annotations

import pytest

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, signed_up


@pytest.fixture
def server(make_as) -> LiveAS:
    return make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)


@pytest.fixture
def nat(server) -> PersonAgent:
    """Nat, signed up and logged in at the AS."""
    return signed_up(server, "nat")
