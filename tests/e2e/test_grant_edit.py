"""The person edits what an app sees, in a real browser against the real servers.

Nat shares both banks with the Grapher, then unticks Monami Card for it on the AS dashboard.
The Grapher's next look no longer shows Monami Card, with the same token.
"""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, Screenshots
from tests.e2e.test_story import connect_institution, press_the_as_button, sign_up


@pytest.mark.timeout(300)
def test_nat_unticks_one_bank_for_the_grapher_and_its_next_look_drops_it(page, stack, grapher):
    shots = Screenshots(ROOT / "tests" / "artifacts" / "e2e-grant-edit")
    as_url = stack.as_url
    username = f"nat-{secrets.token_hex(3)}"
    sign_up(page, as_url, username)
    connect_institution(page, as_url, "Bank of Astoria")
    connect_institution(page, as_url, "Monami Card")

    # the consent page: what the Grapher asks, each institution with what it would share
    page.goto(grapher.url)
    press_the_as_button(page, as_url, username)
    monami = page.locator("label", has_text="Monami Card")
    expect(monami.locator('input[name="registration"]')).to_be_checked()
    expect(monami).to_contain_text("for: See your accounts")
    shots.take(page, "as-consent-per-institution")
    page.locator('button[name="decision"][value="allow"]').click()
    page.wait_for_url(re.compile(re.escape(grapher.url)))
    expect(page.locator("svg#balances")).to_contain_text("Monami Card")

    # the dashboard: per institution, what the Grapher may read; untick all of Monami Card
    page.goto(f"{as_url}/")
    app = page.locator("#apps li", has_text="Grapher")
    monami_box = app.locator("fieldset", has_text="Monami Card")
    expect(monami_box).to_contain_text("via")
    shots.take(page, "as-dashboard-what-each-app-reads")
    for box in monami_box.locator('input[name="keep"]').all():
        box.uncheck()
    app.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(re.escape(f"{as_url}/") + r"(#apps)?$"))
    expect(page.locator("#apps li", has_text="Grapher").locator("fieldset", has_text="Monami Card")
           ).to_have_count(0)
    expect(page.locator("#activity")).to_contain_text("You changed what Grapher can read")
    shots.take(page, "as-dashboard-after-edit")

    # the Grapher's next look, same token: Bank of Astoria only
    page.goto(grapher.url)
    page.reload()
    balances = page.locator("svg#balances")
    expect(balances).to_contain_text("Bank of Astoria")
    expect(balances).not_to_contain_text("Monami Card")
    expect(page.locator("main")).not_to_contain_text("Monami Card")
    shots.take(page, "grapher-after-edit")
