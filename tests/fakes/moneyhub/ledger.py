"""Deterministic, realistic bank data for a connection: accounts and ~3 months of transactions.

Shapes follow Moneyhub's Data API v3: amounts are integers in minor units (pence) under
``amount: {value, currency}``; dates are ISO 8601 in UTC with milliseconds.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import Bank

_ACCOUNT_KINDS: dict[str, list[tuple[str, str]]] = {
    # bank account type -> [(Moneyhub account "type", display suffix)]
    "cash": [("cash:current", "Current Account"), ("cash:savings", "Instant Saver")],
    "card": [("card", "Credit Card")],
    "mortgage": [("mortgage:repayment", "Mortgage")],
    "loan": [("loan", "Personal Loan")],
    "investment": [("investment", "Stocks & Shares ISA")],
    "pension": [("pension", "Personal Pension")],
}

_SPENDING: list[tuple[str, str, str, int, int]] = [
    # short description, long description, category, min pence, max pence
    ("Tesco Stores", "TESCO STORES 3297 LONDON", "std:groceries", 850, 9500),
    ("Sainsbury's", "SAINSBURYS S/MKTS 0443", "std:groceries", 600, 7800),
    ("Pret A Manger", "PRET A MANGER KINGS CROSS", "std:eating-out", 325, 1450),
    ("TfL Travel", "TFL TRAVEL CH TFL.GOV.UK/CP", "std:transport", 280, 1740),
    ("Amazon", "AMAZON.CO.UK*2K4LP0", "std:shopping", 799, 6499),
    ("Netflix", "NETFLIX.COM", "std:entertainment", 1099, 1099),
    ("Thames Water", "THAMES WATER DD", "std:utilities", 3400, 3400),
    ("Octopus Energy", "OCTOPUS ENERGY DD", "std:utilities", 8900, 8900),
    ("Boots", "BOOTS 1142 HIGH ST", "std:health", 250, 2600),
]


@dataclass
class Ledger:
    """The accounts of one connection and their transactions (newest first)."""

    accounts: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)


def iso(moment: datetime) -> str:
    """Moneyhub's timestamp format: ``2019-09-27T14:29:43.687Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def generate_ledger(
    seed: str, connection_id: str, bank: Bank, connected_on: datetime, days: int = 90
) -> Ledger:
    """Accounts and transactions for ``connection_id``, the same for the same inputs."""
    rng = random.Random(f"{seed}:{connection_id}")
    ledger = Ledger()
    kinds = [kind for name in bank.account_types for kind in _ACCOUNT_KINDS.get(name, [])]
    for account_type, suffix in kinds[:3]:
        account_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        transactions = _transactions(rng, account_id, account_type, connected_on, days)
        balance = rng.randint(20_000, 600_000) + sum(t["amount"]["value"] for t in transactions)
        if account_type in ("card", "mortgage:repayment", "loan"):
            balance = -abs(balance)
        ledger.accounts.append({
            "id": account_id,
            "accountName": f"{bank.name.split(' Open Banking')[0]} {suffix}",
            "providerName": bank.name,
            "providerId": bank.id,
            "providerReference": bank.bank_ref,
            "connectionId": connection_id,
            "type": account_type,
            "accountType": "personal",
            "currency": "GBP",
            "balance": {
                "date": iso(connected_on),
                "amount": {"value": balance, "currency": "GBP"},
            },
            "dateAdded": iso(connected_on),
            "dateModified": iso(connected_on),
            "details": {
                "sortCodeAccountNumber": (
                    f"{rng.randint(100000, 999999)}{rng.randint(10_000_000, 99_999_999)}"
                ),
            },
            "transactionData": {
                "count": len(transactions),
                "earliestDate": transactions[-1]["date"][:10] if transactions else None,
                "lastDate": transactions[0]["date"][:10] if transactions else None,
            },
        })
        ledger.transactions.extend(transactions)
    ledger.transactions.sort(key=lambda t: t["date"], reverse=True)
    return ledger


def _transactions(
    rng: random.Random, account_id: str, account_type: str, end: datetime, days: int
) -> list[dict[str, Any]]:
    start = end - timedelta(days=days)
    out: list[dict[str, Any]] = []

    def add(when: datetime, pence: int, short: str, long: str, category: str) -> None:
        out.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "accountId": account_id,
            "amount": {"value": pence, "currency": "GBP"},
            "date": iso(when),
            "dateModified": iso(when),
            "shortDescription": short,
            "longDescription": long,
            "categoryId": category,
            "categoryIdConfirmed": False,
            "notes": "",
            "status": "posted",
        })

    def spending(gap: Callable[[], timedelta]) -> None:
        moment = start + gap()
        while moment <= end:
            short, long, category, low, high = rng.choice(_SPENDING)
            add(moment, -rng.randint(low, high), short, long, category)
            moment += gap()

    def monthly(day: int, pence: Callable[[], int], short: str, long: str, category: str) -> None:
        for month in range(days // 30 + 1):
            when = start + timedelta(days=30 * month + day)
            if when <= end:
                add(when, pence(), short, long, category)

    if account_type == "cash:current":
        monthly(3, lambda: 285_000, "Salary", "ACME LTD SALARY", "std:income")
        spending(lambda: timedelta(hours=rng.randint(10, 40)))
    elif account_type == "card":
        spending(lambda: timedelta(days=rng.randint(2, 6)))
        add(start + timedelta(days=25), 42_000, "Payment received", "PAYMENT THANK YOU",
            "std:transfers")
    elif account_type == "cash:savings":
        monthly(1, lambda: rng.randint(150, 900), "Interest", "GROSS INTEREST", "std:interest")
    else:
        monthly(15, lambda: -rng.randint(20_000, 90_000), "Monthly payment", "DIRECT DEBIT",
                "std:bills")
    return out
