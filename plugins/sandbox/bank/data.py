"""Deterministic demo data: each customer's accounts and a year of transactions ending today.

Everything derives from (institution, customer number, today's date): the same customer sees the
same data all day, from any worker, with nothing stored. A day's events are seeded by their own
date, so a transaction keeps its date, amount and description as the window slides forward.
Balances are consistent with the history: an account's balance is its opening balance a year
ago plus every transaction listed for it.

Shapes follow Moneyhub's Data API (``{"data": [...]}``, amounts in minor units under
``amount.value``) so that one client can read this sandbox and Moneyhub alike.
"""

from __future__ import annotations

import hashlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from .institutions import Institution
from .store import Payment

HISTORY_DAYS = 365
CURRENCY = "GBP"
#: a payment stays pending this long before it settles
SETTLE_SECONDS = 2


@dataclass(frozen=True)
class Account:
    id: str
    type: str  # Moneyhub-style: "cash:current", "cash:savings", "card", "investment", "pension"
    name: str
    opening_balance: int  # minor units, HISTORY_DAYS ago
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Transaction:
    id: str
    account_id: str
    date: date
    amount: int  # minor units; negative = money out of the account
    description: str
    category: str
    merchant: str | None
    status: str = "posted"  # or "pending": a payment not yet settled


@dataclass(frozen=True)
class Portfolio:
    """One customer's accounts, transactions (newest first) and current balances."""

    institution: Institution
    as_of: date
    accounts: tuple[Account, ...]
    transactions: tuple[Transaction, ...]
    balances: Mapping[str, int] = field(compare=False, hash=False)

    def account(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts if a.id == account_id), None)


def today() -> date:
    """The bank's business date (UTC, so every worker agrees)."""
    return datetime.now(UTC).date()


def portfolio(institution: Institution, user_id: str, as_of: date | None = None, *,
              payments: Iterable[Payment] = ()) -> Portfolio:
    """The customer's data as of ``as_of`` (default: today), with the ``payments`` they made
    (rejected ones aside) as transactions out of their accounts."""
    generated = _portfolio(institution, user_id, as_of or today())
    paid = [_paid(payment) for payment in payments if payment.status != "rejected"
            and generated.account(payment.account_id) is not None]
    if not paid:
        return generated
    balances = dict(generated.balances)
    for transaction in paid:
        balances[transaction.account_id] += transaction.amount
    transactions = sorted((*paid, *generated.transactions), key=lambda t: t.date, reverse=True)
    return replace(generated, transactions=tuple(transactions), balances=MappingProxyType(balances))


def settled_status(payment: Payment, now: float | None = None) -> str:
    """``pending`` until :data:`SETTLE_SECONDS` have passed, then ``completed``."""
    if payment.status == "pending" and (now or time.time()) >= payment.created_at + SETTLE_SECONDS:
        return "completed"
    return payment.status


def _paid(payment: Payment) -> Transaction:
    return Transaction(
        id=f"pay-{payment.id}", account_id=payment.account_id,
        date=datetime.fromtimestamp(payment.created_at, UTC).date(), amount=-payment.amount,
        description=f"Payment to {payment.creditor_name}, ref {payment.reference}",
        category="payments", merchant=payment.creditor_name,
        status="posted" if settled_status(payment) == "completed" else "pending",
    )


def account_json(portfolio: Portfolio, account: Account, *, with_balance: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": account.id,
        "type": account.type,
        "accountName": account.name,
        "providerName": portfolio.institution.name,
        "currency": CURRENCY,
        "details": account.details,
    }
    if with_balance:
        body["balance"] = {
            "amount": {"value": portfolio.balances[account.id], "currency": CURRENCY},
            "date": portfolio.as_of.isoformat(),
        }
    return body


def transaction_json(transaction: Transaction) -> dict[str, Any]:
    return {
        "id": transaction.id,
        "accountId": transaction.account_id,
        "date": transaction.date.isoformat(),
        "amount": {"value": transaction.amount, "currency": CURRENCY},
        "description": transaction.description,
        "category": transaction.category,
        "merchant": transaction.merchant,
        "status": transaction.status,
    }


# -- generation ---------------------------------------------------------------------------------

MERCHANTS: dict[str, tuple[tuple[str, ...], int, int]] = {
    # category: (merchants, smallest, largest amount in pence)
    "groceries": (("Greengrocer & Co", "Harvest Supermarket", "Corner Larder"), 650, 9500),
    "eating_out": (("The Copper Kettle", "Noodle Bar 88", "Pizzeria Bella", "Riverside Cafe"),
                   320, 5200),
    "transport": (("City Transit", "Railway Tickets Ltd", "QuickCab"), 250, 4200),
    "shopping": (("Bookworm Books", "Threads Clothing", "Gadget Hub", "Home & Garden Store"),
                 900, 14000),
    "entertainment": (("Cinema Paradiso", "Live Arena Tickets", "Bowling Alley"), 800, 6500),
    "travel": (("SkyHigh Airlines", "Harbour Hotels", "Rail Europa"), 4500, 48000),
}
EMPLOYERS = ("Acme Widgets Ltd", "Northwind Traders", "Globex Corporation", "Initech UK")
COMPANIES = ("Astoria Rail plc", "Harbour Energy plc", "Northwind Foods plc", "Globex Pharma plc")


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


class _Ledger:
    """Posts transactions and keeps running balances while a plan replays the year."""

    def __init__(self, accounts: tuple[Account, ...]) -> None:
        self.balances = {account.id: account.opening_balance for account in accounts}
        self.transactions: list[Transaction] = []
        self._seq: dict[tuple[str, date], int] = {}

    def post(
        self, account: Account, day: date, amount: int, description: str, category: str,
        merchant: str | None = None,
    ) -> None:
        if amount == 0:
            return
        seq = self._seq.get((account.id, day), 0)
        self._seq[(account.id, day)] = seq + 1
        self.transactions.append(Transaction(
            id=f"txn_{_digest(account.id, day, seq)[:20]}",
            account_id=account.id, date=day, amount=amount,
            description=description, category=category, merchant=merchant,
        ))
        self.balances[account.id] += amount

    def spend(self, account: Account, day: date, rng: random.Random, category: str,
              scale: float = 1.0) -> int:
        merchants, low, high = MERCHANTS[category]
        merchant = rng.choice(merchants)
        amount = round(rng.randint(low, high) * scale)
        self.post(account, day, -amount, f"CARD PAYMENT TO {merchant.upper()}", category, merchant)
        return amount

    def grow(self, account: Account, day: date, rng: random.Random, mean: float,
             spread: float) -> None:
        """A month's market movement on an investment, posted at month end."""
        change = round(self.balances[account.id] * rng.gauss(mean, spread))
        self.post(account, day, change, "Market movement", "market_movement")


def _month_end(day: date) -> bool:
    return (day + timedelta(days=1)).month != day.month


def _account(institution: Institution, user_id: str, n: int, kind: str, name: str,
             opening: int, details: dict[str, Any]) -> Account:
    return Account(f"acc_{_digest(institution.slug, user_id, n)[:16]}", kind, name, opening,
                   details)


def _cash_details(rng: random.Random) -> dict[str, Any]:
    return {"sortCode": f"40-{rng.randint(10, 99)}-{rng.randint(10, 99)}",
            "accountNumber": f"{rng.randint(10_000_000, 99_999_999)}"}


def _card_details(rng: random.Random, limit: int) -> dict[str, Any]:
    return {"cardNumberLast4": f"{rng.randint(0, 9999):04d}",
            "creditLimit": {"value": limit, "currency": CURRENCY}}


class _Plan(ABC):
    """How one kind of institution's customer lives: their accounts and a day's events."""

    def __init__(self, institution: Institution, user_id: str, rng: random.Random) -> None:
        self.institution = institution
        self.user_id = user_id
        self.accounts = self.open_accounts(rng)

    @abstractmethod
    def open_accounts(self, rng: random.Random) -> tuple[Account, ...]:
        """Open this customer's accounts (called once, from the constructor)."""

    @abstractmethod
    def day(self, ledger: _Ledger, day: date, rng: random.Random) -> None:
        """Post one day's transactions to ``ledger``."""

    def account(self, n: int, kind: str, name: str, opening: int,
                details: dict[str, Any]) -> Account:
        return _account(self.institution, self.user_id, n, kind, name, opening, details)


class _BankPlan(_Plan):
    """A high-street bank: salary in, bills and card spending out, savings, a credit card."""

    def open_accounts(self, rng: random.Random) -> tuple[Account, ...]:
        self.salary = rng.randrange(220_000, 420_000, 500)
        self.scale = self.salary / 300_000  # spending follows income, so balances stay sane
        self.employer = rng.choice(EMPLOYERS)
        self.rent = round(self.salary * rng.uniform(0.25, 0.32))
        self.saving = rng.randrange(10_000, 40_000, 1_000)
        self.current, self.savings, self.card = (
            self.account(0, "cash:current", "Everyday Current Account",
                         rng.randrange(80_000, 300_000), _cash_details(rng)),
            self.account(1, "cash:savings", "Easy Access Saver",
                         rng.randrange(200_000, 1_500_000), _cash_details(rng)),
            self.account(2, "card", "Astoria Credit Card", -rng.randrange(10_000, 90_000),
                         _card_details(rng, 500_000)),
        )
        return self.current, self.savings, self.card

    def day(self, ledger: _Ledger, day: date, rng: random.Random) -> None:
        current, savings, card = self.current, self.savings, self.card
        if day.day == 1:
            ledger.post(current, day, -self.rent, "STANDING ORDER RENT", "housing",
                        "Lettings Direct")
        if day.day == 5:
            ledger.post(current, day, -round(rng.randint(6_000, 14_000) * self.scale),
                        "DIRECT DEBIT BRIGHT ENERGY", "bills", "Bright Energy")
        if day.day == 10:
            ledger.post(current, day, -16_500, "DIRECT DEBIT CITY COUNCIL TAX", "bills",
                        "City Council")
        if day.day == 15:
            ledger.post(current, day, -2_400, "DIRECT DEBIT MOBILE CO", "bills", "Mobile Co")
        if day.day == 25:
            ledger.post(current, day, self.salary, f"SALARY {self.employer.upper()}", "income",
                        self.employer)
        if day.day == 26:
            ledger.post(current, day, -self.saving, "TRANSFER TO EASY ACCESS SAVER", "transfer")
            ledger.post(savings, day, self.saving, "TRANSFER FROM CURRENT ACCOUNT", "transfer")
        if day.day == 28 and ledger.balances[card.id] < 0:
            owed = -ledger.balances[card.id]  # the card is paid in full every month
            ledger.post(current, day, -owed, "ASTORIA CREDIT CARD PAYMENT", "card_payment")
            ledger.post(card, day, owed, "PAYMENT RECEIVED - THANK YOU", "card_payment")
        if _month_end(day):
            interest = round(ledger.balances[savings.id] * 0.035 / 12)
            ledger.post(savings, day, interest, "INTEREST PAID", "interest")
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            ledger.spend(current, day, rng, rng.choice(("groceries", "eating_out", "transport")),
                         self.scale)
        if rng.random() < 0.3:
            ledger.spend(card, day, rng, rng.choice(("shopping", "entertainment", "eating_out")),
                         self.scale)
        if rng.random() < 0.01:
            ledger.spend(card, day, rng, "travel", self.scale)


class _CardIssuerPlan(_Plan):
    """A card issuer: two credit cards, frequent purchases, paid off by direct debit."""

    def open_accounts(self, rng: random.Random) -> tuple[Account, ...]:
        self.rewards = self.account(0, "card", "Monami Rewards Card",
                                    -rng.randrange(20_000, 120_000), _card_details(rng, 800_000))
        self.travel = self.account(1, "card", "Monami Travel Card", -rng.randrange(0, 30_000),
                                   _card_details(rng, 300_000))
        self.spent_this_month = 0
        return self.rewards, self.travel

    def day(self, ledger: _Ledger, day: date, rng: random.Random) -> None:
        if day.day == 1:
            self.spent_this_month = 0
        if day.day == 3:
            for card in (self.rewards, self.travel):
                owed = -ledger.balances[card.id]  # paid in full by direct debit
                ledger.post(card, day, owed, "DIRECT DEBIT PAYMENT - THANK YOU", "card_payment")
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            category = rng.choice(("groceries", "eating_out", "transport", "shopping",
                                   "entertainment"))
            self.spent_this_month += ledger.spend(self.rewards, day, rng, category)
        if rng.random() < 0.08:
            ledger.spend(self.travel, day, rng, rng.choice(("travel", "eating_out", "transport")))
        if _month_end(day):
            ledger.post(self.rewards, day, round(self.spent_this_month * 0.005),
                        "MONAMI REWARDS CASHBACK", "cashback")


class _BrokeragePlan(_Plan):
    """A stockbroker: an ISA and a general account, contributions, dividends, fees, markets."""

    def open_accounts(self, rng: random.Random) -> tuple[Account, ...]:
        self.contribution = rng.randrange(10_000, 60_000, 500)
        self.isa = self.account(0, "investment", "Stocks and Shares ISA",
                                rng.randrange(500_000, 4_000_000), {"productType": "isa"})
        self.general = self.account(1, "investment", "General Investment Account",
                                    rng.randrange(100_000, 2_000_000), {"productType": "gia"})
        return self.isa, self.general

    def day(self, ledger: _Ledger, day: date, rng: random.Random) -> None:
        if day.day == 2:
            ledger.post(self.isa, day, self.contribution, "REGULAR CONTRIBUTION",
                        "investment_contribution")
        if day.day == 15 and day.month in (3, 6, 9, 12):
            for account in (self.isa, self.general):
                company = rng.choice(COMPANIES)
                amount = round(ledger.balances[account.id] * rng.uniform(0.004, 0.009))
                ledger.post(account, day, amount, f"DIVIDEND {company.upper()}", "dividend",
                            company)
        if _month_end(day):
            for account in (self.isa, self.general):
                ledger.grow(account, day, rng, 0.006, 0.03)
                fee = round(ledger.balances[account.id] * 0.0025 / 12)
                ledger.post(account, day, -fee, "PLATFORM FEE", "fees", "Norma Securities")


class _FundPlan(_Plan):
    """A fund manager: a growth fund and an income fund, with regular savings and charges."""

    def open_accounts(self, rng: random.Random) -> tuple[Account, ...]:
        self.contribution = rng.randrange(5_000, 50_000, 500)
        self.growth = self.account(0, "investment", "Lastish Global Growth Fund",
                                   rng.randrange(200_000, 3_000_000),
                                   {"productType": "fund", "units": "accumulation"})
        self.income = self.account(1, "investment", "Lastish Income Fund",
                                   rng.randrange(100_000, 1_000_000),
                                   {"productType": "fund", "units": "income"})
        return self.growth, self.income

    def day(self, ledger: _Ledger, day: date, rng: random.Random) -> None:
        if day.day == 10:
            ledger.post(self.growth, day, self.contribution, "REGULAR SAVINGS PLAN",
                        "investment_contribution")
        if _month_end(day) and day.month in (1, 4, 7, 10):
            amount = round(ledger.balances[self.income.id] * 0.011)
            ledger.post(self.income, day, amount, "DISTRIBUTION REINVESTED", "dividend")
        if _month_end(day):
            ledger.grow(self.growth, day, rng, 0.007, 0.035)
            ledger.grow(self.income, day, rng, 0.003, 0.015)
            for account in (self.growth, self.income):
                charge = round(ledger.balances[account.id] * 0.0075 / 12)
                ledger.post(account, day, -charge, "ANNUAL MANAGEMENT CHARGE", "fees",
                            "Lastish Fundco")


PLANS: dict[str, type[_Plan]] = {
    "bank": _BankPlan,
    "card_issuer": _CardIssuerPlan,
    "brokerage": _BrokeragePlan,
    "fund": _FundPlan,
}


@lru_cache(maxsize=256)  # derived data only: cheap to recompute, safe to hold per process
def _portfolio(institution: Institution, user_id: str, as_of: date) -> Portfolio:
    plan = PLANS[institution.kind](
        institution, user_id, random.Random(_digest(institution.slug, user_id, "profile"))
    )
    ledger = _Ledger(plan.accounts)
    start = as_of - timedelta(days=HISTORY_DAYS)
    for offset in range(HISTORY_DAYS + 1):
        day = start + timedelta(days=offset)
        plan.day(ledger, day, random.Random(_digest(institution.slug, user_id, day)))
    transactions = sorted(ledger.transactions, key=lambda t: t.date, reverse=True)
    # Cached and shared between requests, so handed out read-only.
    balances = MappingProxyType(ledger.balances)
    return Portfolio(institution, as_of, plan.accounts, tuple(transactions), balances)
