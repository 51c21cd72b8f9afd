"""The fake's bank connections: the four well-known lists and the bank icons (seed 001).

Every connection carries ``id``, ``name``, ``type``, ``bankRef``, the deprecated ``parentRef``,
``iconUrl``, ``accountTypes`` (``{name, beta}``) and ``userTypes``; API connections may also
carry ``monthsInitialConsent``/``daysInitialConsent`` (seed 003).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONNECTION_TYPES: tuple[str, ...] = ("all", "api", "legacy", "test")


@dataclass(frozen=True)
class Bank:
    """One bank connection; several connections may share a ``bank_ref`` (one institution)."""

    id: str
    name: str
    type: str  # api | legacy | test
    bank_ref: str
    account_types: tuple[str, ...]
    user_types: tuple[str, ...] = ("personal",)
    months_initial_consent: int | None = None
    days_initial_consent: int | None = None

    def as_json(self, identity_url: str) -> dict[str, Any]:
        """The connection as listed by ``/oidc/.well-known/{type}-connections``."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "bankRef": self.bank_ref,
            "parentRef": self.bank_ref,
            "iconUrl": f"{identity_url}/bank-icons/{self.bank_ref}",
            "accountTypes": [{"name": name, "beta": False} for name in self.account_types],
            "userTypes": list(self.user_types),
            "monthsInitialConsent": self.months_initial_consent,
            "daysInitialConsent": self.days_initial_consent,
        }


BANKS: tuple[Bank, ...] = (
    Bank("b9be1fc1e54ae6d4229967411dc28545", "Modelo Open Banking Mock", "test", "modelo",
         ("cash", "card"), ("personal", "business")),
    # no icon on purpose: /bank-icons/mh-test-bank answers 404 (seed 001 warns of such banks)
    Bank("235bd1c410e96b29dd34aa751d5cb054", "Moneyhub Test Bank (legacy)", "test",
         "mh-test-bank", ("cash",)),
    Bank("49afef18908737d682a555dbbe03b830", "Nationwide Open Banking", "api", "nationwide",
         ("cash", "card", "mortgage"), months_initial_consent=72),
    Bank("616c07e67ed97fd1fa8e6f93e617fe81", "HSBC Open Banking", "api", "hsbc",
         ("cash",), ("personal", "business"), months_initial_consent=24),
    Bank("40a54d924f2833a1c4037fbdc36d310a", "HSBC Credit Cards", "api", "hsbc",
         ("card",), months_initial_consent=24),
    Bank("9d7aeee2659a1a85ce6f5c40d0668cea", "Barclays Open Banking", "api", "barclays",
         ("cash", "card", "loan"), ("personal", "business"), months_initial_consent=24),
    Bank("ad86096826c07e1e0ad7eabbc9ff17a3", "American Express Open Banking", "api", "amex",
         ("card",), days_initial_consent=89),
    Bank("5b5ea2ebaf974c74d74cb80576c5aabb", "Nutmeg", "legacy", "nutmeg", ("investment",)),
    Bank("347e7de453055efafdf85c18e613c737", "Aviva Pensions", "legacy", "aviva", ("pension",)),
)

BANKS_BY_ID: dict[str, Bank] = {bank.id: bank for bank in BANKS}

# bankRefs with an icon; the others answer 404 unless ?defaultIcon=true
_ICON_COLOURS: dict[str, str] = {
    "modelo": "#0b7a75",
    "nationwide": "#1d1d6b",
    "hsbc": "#db0011",
    "barclays": "#00aeef",
    "amex": "#2e77bb",
    "nutmeg": "#3b2a5c",
}


def banks_of_type(connection_type: str) -> list[Bank]:
    """The banks of one list; ``all`` is every real (api + legacy) connection."""
    if connection_type == "all":
        return [bank for bank in BANKS if bank.type in ("api", "legacy")]
    return [bank for bank in BANKS if bank.type == connection_type]


def icon_svg(bank_ref: str) -> str | None:
    """The SVG icon of ``bank_ref`` (``default`` is the generic bank), or None when it has none."""
    if bank_ref == "default":
        return _svg("#6b7280", "£")
    colour = _ICON_COLOURS.get(bank_ref)
    return _svg(colour, bank_ref[0].upper()) if colour else None


def _svg(colour: str, letter: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="12" fill="{colour}"/>'
        '<text x="32" y="42" font-family="sans-serif" font-size="28" fill="#fff" '
        f'text-anchor="middle">{letter}</text></svg>'
    )
