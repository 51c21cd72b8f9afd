"""The story, in a real browser against the real servers.

Nat registers Bank of Astoria and Monami Card at their authorization server once. Later the
Grapher asks for "Nat's bank data, please"; Nat shares only Bank of Astoria, and the Grapher draws
it. Then Nat revokes the Grapher on the AS dashboard, and the Grapher says access has ended.
"""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

PASSWORD = "correct horse battery staple"
ENDED = "Your Authorization Server says access has ended"


def sign_up(page: Page, as_url: str, username: str) -> None:
    page.goto(f"{as_url}/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state()


def connect_institution(page: Page, as_url: str, name: str, shots=None) -> None:
    """Through the AS's pages and the sandbox bank's: sign in with password "sandbox", approve."""
    page.goto(f"{as_url}/connections/new")
    if shots:
        shots.take(page, "as-connect-an-institution")
    page.get_by_role("button", name=f"Connect {name}").click()
    page.get_by_label("Username").fill("nat")
    page.get_by_label("Password").fill("sandbox")
    if shots:
        shots.take(page, "bank-sign-in")
    page.get_by_role("button", name="Sign in").click()
    approve = page.locator('button[name="decision"][value="allow"]')
    expect(approve).to_be_visible()
    if shots:
        shots.take(page, "bank-approve")
    approve.click()
    page.wait_for_url(re.compile(re.escape(as_url)))
    expect(page.get_by_text(name).first).to_be_visible()


def press_the_as_button(page: Page, as_url: str, username: str) -> None:
    """On the Grapher's home page: its "AS" button, then at the AS log in if it asks."""
    page.get_by_role("button", name="Connect my Authorization Server").click()
    page.wait_for_url(re.compile(re.escape(as_url)))
    if page.locator('input[name="password"]').count():  # the AS may ask Nat to log in first
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()


@pytest.mark.timeout(300)
def test_nat_shares_one_bank_with_the_grapher_then_revokes(page, stack, grapher, screenshots):
    as_url = stack.as_url
    username = f"nat-{secrets.token_hex(3)}"
    # A CSP violation or a failed load on the Grapher's pages shows up as a console error.
    grapher_errors: list[str] = []
    page.on("console", lambda message: grapher_errors.append(f"{page.url}: {message.text}")
            if message.type == "error" and page.url.startswith(grapher.url) else None)

    # Resource registration: once, at Nat's own AS.
    sign_up(page, as_url, username)
    screenshots.take(page, "as-signed-up")
    connect_institution(page, as_url, "Bank of Astoria", screenshots)
    connect_institution(page, as_url, "Monami Card")
    page.goto(f"{as_url}/connections")
    registrations = page.locator(".registration")
    expect(registrations.filter(has_text="Bank of Astoria")).to_have_count(1)
    expect(registrations.filter(has_text="Monami Card")).to_have_count(1)
    screenshots.take(page, "as-two-connections")

    # Authorization: the Grapher's "AS" button, then consent to Bank of Astoria only.
    page.goto(grapher.url)
    expect(page.locator("#as_url")).to_have_value(as_url)
    screenshots.take(page, "grapher-home")
    press_the_as_button(page, as_url, username)
    astoria = page.locator("label", has_text="Bank of Astoria").locator('input[name="registration"]')
    monami = page.locator("label", has_text="Monami Card").locator('input[name="registration"]')
    expect(astoria).to_be_checked()
    expect(monami).to_be_checked()  # all ticked by default
    monami.uncheck()
    expect(page.get_by_text("Grapher").first).to_be_visible()
    screenshots.take(page, "as-consent-one-of-two")
    page.locator('button[name="decision"][value="allow"]').click()

    # Get data + service provision: the Grapher introspects, calls the bank, draws.
    page.wait_for_url(re.compile(re.escape(grapher.url)))
    balances = page.locator("svg#balances")
    expect(balances).to_be_visible()
    expect(balances).to_contain_text("Bank of Astoria")
    expect(balances).not_to_contain_text("Monami Card")
    legend = page.locator("svg#spending .legend-item")
    expect(legend).to_have_count(1)
    expect(legend).to_have_attribute("data-institution", "Bank of Astoria")
    expect(page.locator('#institutions li[data-status="ok"]')).to_have_count(1)
    expect(page.locator("main")).not_to_contain_text("Monami Card")
    assert page.locator('svg#spending rect[data-institution="Bank of Astoria"]').count() > 0
    screenshots.take(page, "grapher-chart")

    # Nat changes their mind: revoke on the AS dashboard.
    page.goto(f"{as_url}/")
    grant = page.locator("#apps li", has_text="Grapher")
    expect(grant).to_have_count(1)
    expect(grant).to_contain_text("Bank of Astoria")
    screenshots.take(page, "as-dashboard-grant")
    grant.get_by_role("button", name="Revoke access").click()
    page.wait_for_url(re.compile(re.escape(f"{as_url}/") + r"(#apps)?$"))
    expect(page.locator("#apps li", has_text="Grapher")).to_have_count(0)
    screenshots.take(page, "as-grant-revoked")

    # The Grapher's next look at the AS: the token is no longer active.
    page.goto(grapher.url)
    page.reload()
    expect(page.get_by_role("heading", name=ENDED)).to_be_visible()
    expect(page.get_by_role("button", name="Connect again")).to_be_visible()
    expect(page.locator("svg#balances")).to_have_count(0)
    screenshots.take(page, "grapher-access-ended")
    assert grapher_errors == []
