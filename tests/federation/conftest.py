"""Fixtures: aggregator A (the upstream) with the sandbox bank, Nat's account there with two
institutions, and the person's consent at A as a browser without JavaScript gives it."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.aggregator import LiveAS, PersonAgent
from tests.fixtures.sandbox import redis_database
from tests.introspection.test_story import connect
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, App, decide, make_app, response_params, signed_up, walk


@pytest.fixture
def upstream(sandbox_as) -> LiveAS:
    """Aggregator A: the sandbox bank's institutions, open to client registration."""
    return sandbox_as


@pytest.fixture
def nat_at_a(upstream, sandbox_bank) -> PersonAgent:
    """Nat's account at A, with Bank of Astoria and Monami Card linked there."""
    agent = signed_up(upstream, "nat")
    connect(agent, sandbox_bank, "astoria")
    connect(agent, sandbox_bank, "monami")
    return agent


def register_downstream(upstream: LiveAS, issuer: str, **metadata) -> App:
    """Aggregator B (at ``issuer``) registered at A as a client (RFC 7591)."""
    return make_app(upstream, client_name="Aggregator B",
                    redirect_uris=[f"{issuer}/connections/callback/federation"], **metadata)


def start_downstream(make_as, upstream: LiveAS, redis_url: str, port: int, client: App) -> LiveAS:
    """Aggregator B on ``port`` with the federation plugin, as ``client`` at A, on its own Redis
    database (A keeps database 0, the bank 1)."""
    return make_as(
        port=port,
        REDIS_URL=redis_database(redis_url, 2),
        AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN,
        AGGREGATOR_PLUGINS="federation",
        FEDERATION_ISSUER=upstream.url,
        FEDERATION_CLIENT_ID=client.client_id,
        FEDERATION_CLIENT_SECRET=client.secret or "",
        FEDERATION_NAME="Nat's aggregator",
        AGGREGATOR_UPSTREAM_TIMEOUT="5",
    )


def consent_at_a(agent: PersonAgent, authorization_url: str,
                 registrations: list[str] | None = None) -> requests.Response:
    """Nat, signed in at A, allows on A's consent page (ticking ``registrations``, else as the
    page ticks them); the redirect A answers (to B's callback). A asks nothing when B asks again
    for what Nat already granted it (a reconnect)."""
    page = walk(agent, authorization_url)
    if page.status_code in (302, 303) and registrations is None:
        answer = page
    else:
        assert page.status_code == 200 and 'name="decision"' in page.text, (page.status_code,
                                                                            page.text[:300])
        answer = decide(agent, page, registrations=registrations)
    response_params(answer)  # a redirect with parameters
    return answer
