"""Rich authorization requests (RFC 9396) for payments: the ``payment_initiation`` type.

An app asks to be paid once: how much (``instructedAmount``), to whom (``creditorName`` and a
UK ``creditorAccount``), with which reference (``remittanceInformationUnstructured``) and,
optionally, the reference on the payer's statement (``debtorReference``). The member names are
those of RFC 9396 §2's own payment example and of ISO 20022.

Everything is checked here, before the request is stored or anything is sent upstream; what one
upstream cannot do (Moneyhub's 18-character references) its plugin's ``check_payment`` adds
when the person chooses who pays. RFC 9396 §5: a detail that does not conform to its type is
``invalid_authorization_details``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aggregator.errors import InvalidAuthorizationDetails
from aggregator.oauth.scopes import PAYMENTS
from aggregator.store.payments import PaymentRecord
from aggregator.upstream.contract import PaymentRequest

if TYPE_CHECKING:
    from aggregator.services import Services

PAYMENT_INITIATION = "payment_initiation"
#: a payment's states as apps see them (:data:`aggregator.upstream.contract.PaymentStatus`)
PAYMENT_STATUSES: tuple[str, ...] = ("pending", "completed", "rejected", "failed")
_MEMBERS = frozenset({"type", "instructedAmount", "creditorName", "creditorAccount",
                      "remittanceInformationUnstructured", "debtorReference"})
#: a positive amount with at most two decimals, below a billion (no exponent, no sign)
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")  # ISO 4217 alphabetic code
_SORT_CODE = re.compile(r"^[0-9]{6}$")
_ACCOUNT_NUMBER = re.compile(r"^[0-9]{8}$")
#: ISO 20022 Max140Text for names and the unstructured remittance information
_MAX_TEXT = 140
#: ISO 20022 Max35Text for the payer's own reference
_MAX_DEBTOR_REFERENCE = 35
_CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


def parse_payment(item: dict[str, Any]) -> PaymentRequest:
    """One ``payment_initiation`` detail (its ``type`` already read) as a payment request."""
    unknown = set(item) - _MEMBERS
    if unknown:
        raise InvalidAuthorizationDetails(
            f"{PAYMENT_INITIATION} does not take: {', '.join(sorted(str(u)[:50] for u in unknown))}.")
    amount = item.get("instructedAmount")
    if not isinstance(amount, dict) or set(amount) != {"currency", "amount"}:
        raise InvalidAuthorizationDetails("instructedAmount must be {\"currency\", \"amount\"}.")
    value, currency = amount["amount"], amount["currency"]
    if not isinstance(value, str) or not _AMOUNT.match(value) or Decimal(value) <= 0:
        raise InvalidAuthorizationDetails(
            "instructedAmount.amount must be a positive decimal string with at most two decimals, "
            "like \"1.50\".")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise InvalidAuthorizationDetails("instructedAmount.currency must be an ISO 4217 code, like GBP.")
    account = item.get("creditorAccount")
    if not isinstance(account, dict) or set(account) != {"sortCode", "accountNumber"}:
        raise InvalidAuthorizationDetails("creditorAccount must be {\"sortCode\", \"accountNumber\"}.")
    sort_code, number = account["sortCode"], account["accountNumber"]
    if not isinstance(sort_code, str) or not _SORT_CODE.match(sort_code):
        raise InvalidAuthorizationDetails("creditorAccount.sortCode must be 6 digits.")
    if not isinstance(number, str) or not _ACCOUNT_NUMBER.match(number):
        raise InvalidAuthorizationDetails("creditorAccount.accountNumber must be 8 digits.")
    debtor_reference = item.get("debtorReference")
    if debtor_reference is not None:
        debtor_reference = _text(item, "debtorReference", _MAX_DEBTOR_REFERENCE)
    return PaymentRequest(
        amount=_canonical(value), currency=currency,
        creditor_name=_text(item, "creditorName", _MAX_TEXT),
        sort_code=sort_code, account_number=number,
        reference=_text(item, "remittanceInformationUnstructured", _MAX_TEXT),
        debtor_reference=debtor_reference,
    )


def _text(item: dict[str, Any], name: str, limit: int) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAuthorizationDetails(f"{PAYMENT_INITIATION} needs {name}: a non-empty string.")
    if len(value) > limit:
        raise InvalidAuthorizationDetails(f"{name} is longer than {limit} characters.")
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in value):
        raise InvalidAuthorizationDetails(f"{name} must not contain control characters.")
    return value.strip()


def _canonical(value: str) -> str:
    """``"1.5"`` -> ``"1.50"``: one spelling per amount."""
    try:
        return f"{Decimal(value):.2f}"
    except InvalidOperation:  # pragma: no cover - the pattern already matched
        raise InvalidAuthorizationDetails("instructedAmount.amount is not a number.") from None


def instructed_amount(payment: PaymentRequest) -> dict[str, str]:
    return {"currency": payment.currency, "amount": payment.amount}


def money(payment: PaymentRequest) -> str:
    """``£1.50``, or ``1.50 CHF`` where we know no symbol."""
    symbol = _CURRENCY_SYMBOLS.get(payment.currency)
    return f"{symbol}{payment.amount}" if symbol else f"{payment.amount} {payment.currency}"


def sentence(payment: PaymentRequest) -> str:
    """What the consent page says, plainly: "Pay £1.50 to Acme Ltd (sort code 12-34-56,
    account 12345678), reference COFFEE-42"."""
    return f"Pay {description(payment)}"


def description(payment: PaymentRequest) -> str:
    """"£1.50 to Acme Ltd (sort code 12-34-56, account 12345678), reference COFFEE-42"."""
    code = payment.sort_code
    return (f"{money(payment)} to {payment.creditor_name} (sort code {code[:2]}-{code[2:4]}-"
            f"{code[4:]}, account {payment.account_number}), reference {payment.reference}")


def granted_payment(record: PaymentRecord) -> dict[str, Any]:
    """RFC 9396 §7: the payment in a token response, as asked plus its id and state."""
    return {
        "type": PAYMENT_INITIATION,
        "instructedAmount": instructed_amount(record.payment),
        "creditorName": record.payment.creditor_name,
        "payment_id": record.id,
        "status": record.status,
    }


def granted_payments(svc: Services, person_id: str, family: str | None,
                     scopes: Iterable[str]) -> list[dict[str, Any]]:
    """The payment a token's code was issued for, as its token and introspection responses
    carry it (RFC 9396 §7, §9.1); empty for any other token."""
    if family is None or PAYMENTS not in scopes:
        return []
    record = svc.store.payments.for_family(person_id, family)
    return [granted_payment(record)] if record is not None else []
