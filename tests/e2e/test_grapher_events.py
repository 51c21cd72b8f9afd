"""The Grapher hears from the AS (an SSF event), in a real browser against `make run`'s servers.

Nat connects the Grapher, then revokes it on the AS dashboard. The runner's event delivery worker
turns that into a SET on the Grapher's poll stream; the Grapher's next page says so.
"""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, Screenshots
from tests.e2e.test_story import PASSWORD, connect_institution, sign_up


@pytest.mark.timeout(300)
def test_nat_revokes_the_grapher_and_it_shows_the_notice_from_the_event(page, stack, grapher):
    shots = Screenshots(ROOT / "tests" / "artifacts" / "e2e-grapher-events")
    as_url = stack.as_url
    username = f"nat-{secrets.token_hex(3)}"
    sign_up(page, as_url, username)
    connect_institution(page, as_url, "Bank of Astoria")

    page.goto(grapher.url)
    page.get_by_role("button", name="Connect my Authorization Server").click()
    page.wait_for_url(re.compile(re.escape(as_url)))
    if page.locator('input[name="password"]').count():
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
    page.locator('button[name="decision"][value="allow"]').click()
    page.wait_for_url(re.compile(re.escape(grapher.url)))
    expect(page.locator("svg#balances")).to_contain_text("Bank of Astoria")  # its stream exists now

    page.goto(f"{as_url}/")
    page.locator("#apps li", has_text="Grapher").get_by_role("button", name="Revoke access").click()
    page.wait_for_url(re.compile(re.escape(f"{as_url}/")))

    page.wait_for_timeout(1000)  # the SET is at the Grapher's stream within a second
    page.goto(grapher.url)
    expect(page.get_by_role("status").filter(has_text="Your access was revoked")).to_be_visible()
    shots.take(page, "grapher-notice-after-revocation")
