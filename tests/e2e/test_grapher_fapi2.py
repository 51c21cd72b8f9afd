"""The story with the AS in its FAPI 2.0 profile (``AGGREGATOR_PROFILE=fapi2``, server DPoP nonces
on) and the Grapher in its FAPI 2.0 mode, in headless Chromium.

Nat signs up, registers Bank of Astoria and Monami Card, and connects the Grapher, which pushes
its request (PAR, PKCE S256) with a ``private_key_jwt`` assertion and a DPoP proof, checks
``iss``, redeems the code with a proof, calls userinfo with its DPoP-bound token, and charts
both banks. The AS's own records then show that it was so: the client is registered with
``private_key_jwt`` and ``dpop_bound_access_tokens``, and introspection shows the token bound to
the Grapher's key (``cnf.jkt``), which a thief without the key cannot use.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from playwright.sync_api import expect

from aggregator.testing.servers import reserve_port, serve_wsgi
from examples.grapher import GrapherSettings, create_grapher_app
from tests.e2e.conftest import ARTIFACTS, INITIAL_ACCESS_TOKEN, Screenshots, Stack, running_stack
from tests.e2e.test_grapher_dpop import connection_of
from tests.e2e.test_story import connect_institution, press_the_as_button, sign_up


@pytest.fixture(scope="module")
def fapi2_stack(tmp_path_factory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("fapi2"), AGGREGATOR_PROFILE="fapi2",
                       AGGREGATOR_DPOP_NONCE="true") as running:
        yield running


@pytest.fixture
def fapi2_grapher(fapi2_stack: Stack) -> Iterator[tuple[str, Flask]]:
    """The Grapher in FAPI 2.0 mode (``GRAPHER_FAPI2=true``), registering itself at this AS."""
    port = reserve_port()
    app = create_grapher_app(GrapherSettings(port=port, as_url=fapi2_stack.as_url,
                                             initial_access_token=INITIAL_ACCESS_TOKEN, fapi2=True))
    with serve_wsgi(app, port=port) as server:
        yield server.url, app


def registered_clients(stack: Stack) -> list[dict]:
    """``aggregator clients list`` against the runner's Redis: what an operator sees."""
    command = Path(sys.executable).with_name("aggregator")
    listed = subprocess.run([str(command), "clients", "list"], env=stack.env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


@pytest.mark.timeout(300)
def test_nat_connects_the_fapi2_grapher_with_dpop_and_private_key_jwt(page, fapi2_stack, fapi2_grapher):
    as_url = fapi2_stack.as_url
    grapher_url, grapher_app = fapi2_grapher
    shots = Screenshots(ARTIFACTS.with_name("e2e-fapi2"))
    username = f"nat-{secrets.token_hex(3)}"
    grapher_errors: list[str] = []
    page.on("console", lambda message: grapher_errors.append(f"{page.url}: {message.text}")
            if message.type == "error" and page.url.startswith(grapher_url) else None)

    sign_up(page, as_url, username)
    connect_institution(page, as_url, "Bank of Astoria")
    connect_institution(page, as_url, "Monami Card")

    page.goto(grapher_url)
    press_the_as_button(page, as_url, username)
    expect(page.locator('input[name="registration"]')).to_have_count(2)
    page.locator('button[name="decision"][value="allow"]').click()

    page.wait_for_url(re.compile(re.escape(grapher_url)))
    balances = page.locator("svg#balances")
    expect(balances).to_contain_text("Bank of Astoria")
    expect(balances).to_contain_text("Monami Card")
    expect(page.locator('#institutions li[data-status="ok"]')).to_have_count(2)
    expect(page.locator("#fapi2")).to_have_text("FAPI 2.0 · DPoP-bound token")
    shots.take(page, "grapher-fapi2-dpop")
    assert grapher_errors == []

    # The AS's records: the client it registered, and the token it issued.
    connection = connection_of(grapher_app)
    client = connection.client
    record = next(c for c in registered_clients(fapi2_stack) if c["client_id"] == client.client_id)
    assert record["token_endpoint_auth_method"] == "private_key_jwt"
    assert record["dpop_bound_access_tokens"] is True
    assert record["jwks"]["keys"][0]["kid"] == client.key.kid
    access_token = connection.token["access_token"]
    answer = client.introspect(connection.introspection_endpoint, access_token)  # private_key_jwt
    assert answer["active"] is True and answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": client.dpop.jkt}
    assert set(answer["institutions"]) == {"Bank of Astoria", "Monami Card"}

    # Copied, the token is useless without the Grapher's DPoP key.
    stolen = requests.get(f"{as_url}/userinfo", headers={"Authorization": f"Bearer {access_token}"},
                          timeout=10)
    assert stolen.status_code == 401 and stolen.headers["WWW-Authenticate"].startswith("DPoP")
