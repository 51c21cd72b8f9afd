"""Fixtures: an AS open for registration, Nat, a person signed up at it, and Nat's banks."""

from __future__ import annotations

import pytest

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, make_app, new_key, seed_registration, signed_up
from tests.oauth.fapi_client import FapiApp


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


@pytest.fixture
def fapi(make_as) -> LiveAS:
    """An AS under the FAPI 2.0 profile (``AGGREGATOR_PROFILE=fapi2``), open for registration."""
    return make_as(AGGREGATOR_PROFILE="fapi2", AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)


@pytest.fixture
def ana(fapi) -> PersonAgent:
    """Ana, signed up at the fapi2 AS, with her Bank of Astoria."""
    agent = signed_up(fapi, "ana")
    seed_registration(fapi, agent, "Bank of Astoria")
    return agent


@pytest.fixture
def grapher(fapi) -> FapiApp:
    """A FAPI 2.0 app: private_key_jwt (PS256) and a DPoP key."""
    return FapiApp(fapi, make_app(fapi, key=new_key("RSA")))
