"""Fixtures: an AS with the fake-bank plugin enabled, fake banks, and a person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from aggregator.store.people import PersonRecord
from tests.fixtures.aggregator import LiveAS
from tests.introspection.deployment import deploy, deployment  # noqa: F401 - fixtures
from tests.introspection.upstream import PLUGINS, FakeBank, running


@pytest.fixture
def banks() -> Iterator[Callable[..., FakeBank]]:
    """Start fake banks: ``banks("Bank of Astoria", latency_ms=100)``."""
    with ExitStack() as stack:

        def start(name: str = "Bank of Astoria", **faults) -> FakeBank:
            bank = stack.enter_context(running(FakeBank(name)))
            for fault, value in faults.items():
                setattr(bank.faults, fault, value)
            return bank

        yield start


@pytest.fixture
def server(make_as) -> LiveAS:
    """The AS with a one-second upstream timeout and the fake-bank plugin."""
    return make_as(AGGREGATOR_UPSTREAM_TIMEOUT="1", AGGREGATOR_TOKEN_FRESHNESS="60", plugins=PLUGINS)


@pytest.fixture
def person(server) -> PersonRecord:
    return server.services.store.people.create("nat", "not-a-real-hash")
