"""The institutions' APIs: Bearer checks (RFC 6750), scopes, and the customer's data."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests

from plugins.sandbox.bank import data as bank_data
from plugins.sandbox.bank.data import portfolio
from plugins.sandbox.bank.institutions import INSTITUTIONS
from tests.sandbox.flows import api_get, connect


def test_accounts_carry_balances_only_with_the_balances_scope(sandbox_bank):
    _, without = connect(sandbox_bank, scope="accounts")
    plain = api_get(f"{without['endpoint']}/accounts", without["access_token"]).json()["data"]
    assert plain and all("balance" not in account for account in plain)

    _, with_balances = connect(sandbox_bank, scope="accounts balances")
    rich = api_get(f"{with_balances['endpoint']}/accounts",
                   with_balances["access_token"]).json()["data"]
    assert [a["id"] for a in rich] == [a["id"] for a in plain]
    for account in rich:
        assert account["balance"]["amount"]["currency"] == "GBP"
        assert isinstance(account["balance"]["amount"]["value"], int)


def test_each_institution_offers_sensible_accounts(sandbox_bank):
    expected = {
        "astoria": {"cash:current", "cash:savings", "card"},
        "monami": {"card"},
        "norma": {"investment"},
        "lastish": {"investment"},
    }
    for institution, types in expected.items():
        _, token = connect(sandbox_bank, institution)
        accounts = api_get(f"{token['endpoint']}/accounts", token["access_token"]).json()["data"]
        assert {a["type"] for a in accounts} == types
        assert {a["providerName"] for a in accounts} == {INSTITUTIONS[institution].name}


def test_a_year_of_transactions_ending_today_consistent_with_balances(sandbox_bank):
    _, token = connect(sandbox_bank, "astoria", username="carol")
    accounts = api_get(f"{token['endpoint']}/accounts", token["access_token"]).json()["data"]
    transactions = api_get(f"{token['endpoint']}/transactions",
                           token["access_token"]).json()["data"]
    dates = [date.fromisoformat(t["date"]) for t in transactions]
    assert dates == sorted(dates, reverse=True)  # newest first
    assert dates[0] <= date.today() + timedelta(days=1)  # UTC "today" may run ahead locally
    assert dates[-1] >= dates[0] - timedelta(days=366)
    assert len(transactions) > 300
    sample = transactions[0]
    assert set(sample) >= {"id", "accountId", "date", "amount", "description", "category",
                           "merchant"}
    # Balance = opening balance a year ago + every listed transaction (docs/sandbox-bank.md).
    data = portfolio(INSTITUTIONS["astoria"], token["endpoint"].rsplit("/", 1)[1])
    for account in accounts:
        listed = sum(t["amount"]["value"] for t in transactions if t["accountId"] == account["id"])
        opening = next(a.opening_balance for a in data.accounts if a.id == account["id"])
        assert account["balance"]["amount"]["value"] == opening + listed


def test_the_same_customer_always_sees_the_same_data(sandbox_bank):
    _, first = connect(sandbox_bank, "monami", username="dave")
    _, second = connect(sandbox_bank, "monami", username="dave")
    _, other = connect(sandbox_bank, "monami", username="erin")
    assert first["endpoint"] == second["endpoint"] != other["endpoint"]

    def transactions(token):
        return api_get(f"{token['endpoint']}/transactions", token["access_token"]).json()

    assert transactions(first) == transactions(second)
    assert transactions(first) != transactions(other)


def test_transactions_filter_by_dates_and_account(sandbox_bank):
    _, token = connect(sandbox_bank)
    url, access = f"{token['endpoint']}/transactions", token["access_token"]
    everything = api_get(url, access).json()["data"]
    account_id = everything[0]["accountId"]
    start = (date.today() - timedelta(days=60)).isoformat()
    end = (date.today() - timedelta(days=30)).isoformat()

    window = api_get(url, access, **{"from": start, "to": end}).json()["data"]
    assert window and all(start <= t["date"] <= end for t in window)
    assert window == [t for t in everything if start <= t["date"] <= end]
    one = api_get(url, access, account_id=account_id).json()["data"]
    assert one == [t for t in everything if t["accountId"] == account_id]


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"from": "yesterday"}, 400, "invalid_request"),
        ({"to": "2024-13-01"}, 400, "invalid_request"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, 400, "invalid_request"),
        ({"account_id": "acc_nope"}, 404, "not_found"),
    ],
)
def test_bad_transaction_queries_are_clear_4xx(sandbox_bank, params, status, error):
    _, token = connect(sandbox_bank)
    answer = api_get(f"{token['endpoint']}/transactions", token["access_token"], **params)
    assert answer.status_code == status
    assert answer.json()["error"] == error


def test_each_endpoint_needs_its_scope(sandbox_bank):
    _, token = connect(sandbox_bank, scope="balances")
    for path, scope in (("accounts", "accounts"), ("transactions", "transactions")):
        answer = api_get(f"{token['endpoint']}/{path}", token["access_token"])
        assert answer.status_code == 403
        assert answer.json()["error"] == "insufficient_scope"
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert 'error="insufficient_scope"' in challenge and f'scope="{scope}"' in challenge


def test_no_token_gets_a_bare_bearer_challenge(sandbox_bank):
    _, token = connect(sandbox_bank)
    for credentials in (None, "Basic abc"):
        headers = {"Authorization": credentials} if credentials else {}
        answer = requests.get(f"{token['endpoint']}/accounts", headers=headers, timeout=10)
        assert answer.status_code == 401
        # RFC 6750 §3.1: no error code when the request carried no token at all.
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="astoria"'


def test_an_invalid_token_is_401_invalid_token(sandbox_bank):
    _, token = connect(sandbox_bank)
    for bad in ("not-a-token", token["refresh_token"]):
        answer = api_get(f"{token['endpoint']}/accounts", bad)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_a_token_opens_only_its_own_customer_at_its_own_institution(sandbox_bank):
    _, alice = connect(sandbox_bank, "astoria", username="alice")
    _, bob = connect(sandbox_bank, "astoria", username="bob")
    other_customer = api_get(f"{bob['endpoint']}/accounts", alice["access_token"])
    assert other_customer.status_code == 403
    assert other_customer.json()["error"] == "access_denied"

    same_number_elsewhere = alice["endpoint"].replace("/astoria/", "/monami/")
    other_bank = api_get(f"{same_number_elsewhere}/accounts", alice["access_token"])
    assert other_bank.status_code == 401
    assert api_get(f"{sandbox_bank.issuer('monami')}/userinfo",
                   alice["access_token"]).status_code == 401


def test_demo_data_is_deterministic_and_balanced_for_every_institution():
    as_of = date(2025, 6, 30)
    for institution in INSTITUTIONS.values():
        first = portfolio(institution, "1234567", as_of)
        bank_data._portfolio.cache_clear()  # regenerate, rather than reread the cache
        again = portfolio(institution, "1234567", as_of)
        assert first.transactions == again.transactions
        assert first.transactions[0].date <= as_of
        assert first.transactions[-1].date >= as_of - timedelta(days=365)
        for account in first.accounts:
            total = sum(t.amount for t in first.transactions if t.account_id == account.id)
            assert first.balances[account.id] == account.opening_balance + total


def test_purchases_keep_their_date_and_amount_as_the_window_slides():
    as_of = date(2025, 6, 30)
    spending = {"groceries", "eating_out", "transport", "shopping", "entertainment", "travel"}
    for slug in ("astoria", "monami"):
        before = portfolio(INSTITUTIONS[slug], "7654321", as_of)
        after = portfolio(INSTITUTIONS[slug], "7654321", as_of + timedelta(days=10))

        first_shared_day = after.transactions[-1].date

        def purchases(data, first_shared_day=first_shared_day):  # days both windows cover
            return [t for t in data.transactions if t.category in spending
                    and first_shared_day <= t.date <= as_of]

        assert purchases(before) and purchases(after) == purchases(before)
