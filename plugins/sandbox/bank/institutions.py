"""The four pretend financial institutions and the identity of their customers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from werkzeug.routing import BaseConverter, ValidationError


@dataclass(frozen=True)
class Institution:
    """One institution: its own issuer, authorization server and resource server."""

    slug: str
    name: str
    kind: str  # "bank", "card_issuer", "brokerage" or "fund": decides its account types

    def issuer(self, public_url: str) -> str:
        return f"{public_url}/{self.slug}"

    @property
    def makes_payments(self) -> bool:
        """Only a bank holds current and savings accounts, which payments come from."""
        return self.kind == "bank"


INSTITUTIONS: dict[str, Institution] = {
    institution.slug: institution
    for institution in (
        Institution("astoria", "Bank of Astoria", "bank"),
        Institution("monami", "Monami Card", "card_issuer"),
        Institution("norma", "Norma Securities", "brokerage"),
        Institution("lastish", "Lastish Fundco", "fund"),
    )
}

class _CustomerFields(Protocol):
    institution: str
    username: str
    user_id: str


@dataclass(frozen=True)
class Customer:
    """A signed-in customer of one institution."""

    institution: Institution
    username: str
    user_id: str

    @classmethod
    def sign_in(cls, institution: Institution, username: str) -> Customer:
        return cls(institution, username, bank_user_id(institution, username))

    @classmethod
    def of(cls, record: _CustomerFields) -> Customer:
        """The customer a stored code, grant or token belongs to."""
        return cls(INSTITUTIONS[record.institution], record.username, record.user_id)

    def endpoint(self, public_url: str) -> str:
        """The customer's API base: ``{endpoint}/accounts`` and ``{endpoint}/transactions``."""
        return f"{public_url}/{self.institution.slug}/users/{self.user_id}"


# Any username works (password "sandbox"), but keep it printable and bounded: it is echoed in
# pages and userinfo, and keys the deterministic demo data.
_USERNAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


def normalize_username(username: str) -> str | None:
    """The canonical form of a login name, or None when it is not acceptable."""
    username = username.strip()
    return username if _USERNAME.match(username) else None


def bank_user_id(institution: Institution, username: str) -> str:
    """The customer number at ``institution``: 7 digits, stable for (institution, username).

    Case-insensitive, so "Alice" and "alice" are the same customer.
    """
    digest = hashlib.sha256(f"{institution.slug}:{username.casefold()}".encode()).digest()
    return str(1_000_000 + int.from_bytes(digest[:8], "big") % 9_000_000)


class InstitutionConverter(BaseConverter):
    """URL converter ``<institution:institution>``: a known slug, handed to views as an object.

    Unknown slugs do not match the rule at all, so they answer 404 before any view runs.
    """

    def to_python(self, value: str) -> Institution:
        try:
            return INSTITUTIONS[value]
        except KeyError:
            raise ValidationError() from None

    def to_url(self, value: Institution | str) -> str:
        return value.slug if isinstance(value, Institution) else value
