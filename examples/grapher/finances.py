"""The "Service Provision" phase: turn every institution's data into what the charts show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from examples.grapher.banks import InstitutionData

CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥"}
MINOR_DIGITS = {"JPY": 0}
#: money moved between the person's own accounts or market noise: not spending
NOT_SPENDING = frozenset({"transfer", "card_payment", "market_movement", "investment_contribution"})
MONTHS = 12


def format_money(minor: int, currency: str, *, whole: bool = False) -> str:
    """``-123456, "GBP"`` -> ``"-£1,234.56"`` (``whole``: ``"-£1,235"``, for axis ticks)."""
    digits = MINOR_DIGITS.get(currency, 2)
    major = abs(minor) / 10**digits
    number = f"{major:,.0f}" if whole or digits == 0 else f"{major:,.{digits}f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    text = f"{symbol}{number}" if symbol else f"{number} {currency}"
    return f"-{text}" if minor < 0 else text


@dataclass(frozen=True)
class Money:
    value: int  # minor units
    currency: str

    @classmethod
    def of(cls, item: Any, default_currency: str | None = None) -> Money | None:
        """``{"amount": {"value": 123, "currency": "GBP"}}`` (Moneyhub shape) or None."""
        amount = item.get("amount") if isinstance(item, dict) else None
        if not isinstance(amount, dict) or not isinstance(amount.get("value"), int | float):
            return None
        currency = amount.get("currency") or default_currency
        return cls(round(amount["value"]), str(currency)) if currency else None


@dataclass(frozen=True)
class AccountLine:
    name: str
    type: str
    balance: Money | None


@dataclass(frozen=True)
class InstitutionBalance:
    """One bar of the balances chart: the sum of an institution's accounts (cards count negative)."""

    name: str
    value: int
    accounts: int


@dataclass(frozen=True)
class MonthlySpending:
    """Spending per institution per calendar month, oldest month first, in minor units (>= 0)."""

    months: list[date]
    series: dict[str, list[int]]

    @property
    def empty(self) -> bool:
        return not any(any(values) for values in self.series.values())


@dataclass
class Finances:
    """Everything the finances page shows."""

    institutions: list[InstitutionData]
    currency: str
    as_of: date
    balances: list[InstitutionBalance] = field(default_factory=list)
    spending: MonthlySpending = field(default_factory=lambda: MonthlySpending([], {}))
    accounts: dict[str, list[AccountLine]] = field(default_factory=dict)
    #: accounts left out of the charts because they hold another currency
    other_currency: int = 0

    @property
    def charted(self) -> list[str]:
        """The institutions with data, in the order (and so the colours) of the charts."""
        return [item.name for item in self.institutions if item.ok]


def summarize(institutions: list[InstitutionData], today: date) -> Finances:
    """Balances and monthly spending in the currency most accounts use."""
    currency = chart_currency(institutions)
    result = Finances(institutions, currency, today)
    months = last_months(today, MONTHS)
    index = {month: i for i, month in enumerate(months)}
    series: dict[str, list[int]] = {}
    for item in institutions:
        if not item.ok:
            continue
        lines = [_account_line(account) for account in item.accounts]
        result.accounts[item.name] = lines
        balances = [line.balance for line in lines if line.balance]
        in_currency = [money for money in balances if money.currency == currency]
        result.other_currency += len(balances) - len(in_currency)
        result.balances.append(InstitutionBalance(item.name, sum(b.value for b in in_currency),
                                                  len(in_currency)))
        spent = [0] * len(months)
        for month, value in _spending(item.transactions, currency):
            if month in index:
                spent[index[month]] += value
        series[item.name] = spent
    result.spending = MonthlySpending(months, series)
    return result


def chart_currency(institutions: Iterable[InstitutionData]) -> str:
    counts = Counter(
        money.currency
        for item in institutions if item.ok
        for account in item.accounts
        if (money := Money.of(account.get("balance"), account.get("currency")))
    )
    return counts.most_common(1)[0][0] if counts else "GBP"


def last_months(today: date, count: int) -> list[date]:
    """The first day of the ``count`` calendar months ending with ``today``'s, oldest first."""
    months, year, month = [], today.year, today.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def _account_line(account: dict[str, Any]) -> AccountLine:
    name = account.get("accountName") or account.get("name") or account.get("id") or "Account"
    return AccountLine(str(name), str(account.get("type") or ""),
                       Money.of(account.get("balance"), account.get("currency")))


def _spending(transactions: Iterable[dict[str, Any]], currency: str) -> Iterable[tuple[date, int]]:
    """``(month, amount spent)`` for every outgoing payment that is not a move between own accounts."""
    for transaction in transactions:
        money = Money.of(transaction)
        if money is None or money.currency != currency or money.value >= 0:
            continue
        if transaction.get("category") in NOT_SPENDING:
            continue
        try:
            day = date.fromisoformat(str(transaction.get("date", ""))[:10])
        except ValueError:
            continue
        yield day.replace(day=1), -money.value
