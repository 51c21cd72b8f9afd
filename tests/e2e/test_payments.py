"""Nat pays the Grapher £1.50 for Grapher Pro, in a real browser against the real servers.

The Grapher pushes a ``payment_initiation`` request; the AS's consent page states the payment
and offers both of Nat's institutions (the sandbox plugin can pay); Nat picks Bank of Astoria
and approves at the sandbox bank from their current account; the Grapher follows the payment at
``GET /payments/{id}`` until it is completed, and Nat's dashboard lists it.
"""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, Screenshots
from tests.e2e.test_story import PASSWORD, connect_institution, sign_up


@pytest.mark.timeout(300)
def test_nat_pays_the_grapher_from_bank_of_astoria(page, stack, grapher):
    shots = Screenshots(ROOT / "tests" / "artifacts" / "e2e-payments")
    as_url = stack.as_url
    username = f"nat-{secrets.token_hex(3)}"
    sign_up(page, as_url, username)
    connect_institution(page, as_url, "Bank of Astoria")
    connect_institution(page, as_url, "Monami Card")

    # the Grapher asks to be paid; the AS states the payment and asks who pays
    page.goto(grapher.url)
    expect(page.locator("#grapher-pro")).to_contain_text("£1.50")
    page.get_by_role("button", name="Pay £1.50").click()
    page.wait_for_url(re.compile(re.escape(as_url)))
    if page.locator('input[name="password"]').count():
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
    expect(page.locator("#payment-sentence")).to_have_text(
        "Pay £1.50 to Grapher Ltd (sort code 12-34-56, account 12345678), reference GRAPHER-PRO.")
    astoria = page.locator("label", has_text="Bank of Astoria").locator('input[name="registration"]')
    astoria.check()
    shots.take(page, "as-payment-consent")
    page.locator('button[name="decision"][value="allow"]').click()

    # at the bank: sign in, see the payment, pay from the current account
    page.get_by_label("Username").fill("nat")
    page.get_by_label("Password").fill("sandbox")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#payment")).to_contain_text("Pay £1.50 to Grapher Ltd")
    expect(page.locator('input[name="account"]').first).to_be_checked()
    shots.take(page, "bank-approve-payment")
    page.locator('button[name="decision"][value="allow"]').click()

    # back at the Grapher, which reads the payment at the AS until the bank has settled it
    page.wait_for_url(re.compile(re.escape(f"{grapher.url}/pay/status")))
    status = page.locator("#payment-status")
    expect(page.locator("#payment")).to_contain_text("from Bank of Astoria")
    for _ in range(40):
        if status.inner_text() == "completed":
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(status).to_have_text("completed")
    shots.take(page, "grapher-payment-completed")

    # Nat's dashboard lists the payment under the Grapher, and the activity records it
    page.goto(f"{as_url}/")
    payments = page.locator("#payments")
    expect(payments).to_contain_text("Grapher")
    expect(payments).to_contain_text("£1.50 to Grapher Ltd")
    expect(payments).to_contain_text("completed")
    expect(page.locator("#activity")).to_contain_text("You paid Grapher from Bank of Astoria")
    shots.take(page, "as-dashboard-payments")
