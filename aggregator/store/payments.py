"""Payments: those waiting for the person at their bank, and those made.

A payment waiting at the bank is kept under the SHA-256 of the ``state`` sent upstream
(encrypted, single use, ten minutes), like a pending link. A made payment is one encrypted
record in the person's slot (amounts, creditors and references are personal data), listed by
the person's index; a global owner key finds it by its id alone, and the client's index lists
its payments. Records are kept for :data:`PAYMENT_RETENTION`, then expire with their indexes'
entries.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

from aggregator.crypto import token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository, remember_person_key
from aggregator.store.events import execute_with_fact
from aggregator.upstream.contract import PaymentRequest, PaymentStatus

PAYMENT_STATE_TTL = 600
#: how long a payment's record is kept (statements and disputes reach back about a year)
PAYMENT_RETENTION = 400 * 24 * 3600


@dataclass(frozen=True)
class PaymentRecord:
    """One payment an app was made, as the person approved it."""

    #: ours, unguessable (the upstream's is ``upstream_id``)
    id: str
    client_id: str
    person_id: str
    registration_id: str
    provider: str
    #: the paying institution's name, as the person saw it
    institution: str
    upstream_id: str
    payment: PaymentRequest
    status: PaymentStatus
    created_at: int
    updated_at: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaymentRecord:
        return cls(**{**data, "payment": PaymentRequest(**data["payment"])})


class PaymentRepository(Repository):
    # ------------------------------------------------------------ waiting at the bank

    def wait(self, state: str, value: dict[str, Any], ttl: int = PAYMENT_STATE_TTL) -> None:
        """Remember what the upstream's callback with ``state`` will need."""
        key = key_names.payment_state(token_hash(state))
        self.redis.set(key, self.keyring.encrypt_json(value, key), ex=ttl)

    def take_waiting(self, state: str) -> dict[str, Any] | None:
        """What :meth:`wait` stored for ``state``, once (GETDEL); None when unknown or late."""
        key = key_names.payment_state(token_hash(state))
        blob = self.redis.getdel(key)
        return self.keyring.decrypt_json(blob.decode(), key) if blob else None

    # ------------------------------------------------------------ made

    def create(self, *, client_id: str, person_id: str, registration_id: str, provider: str,
               institution: str, upstream_id: str, payment: PaymentRequest, status: PaymentStatus,
               error: str | None = None) -> PaymentRecord:
        now = self.now()
        record = PaymentRecord(secrets.token_urlsafe(24), client_id, person_id, registration_id,
                               provider, institution, upstream_id, payment, status, now, now, error)
        expires_at = now + PAYMENT_RETENTION
        key = key_names.payment(person_id, record.id)
        index = key_names.person_payments(person_id)
        pipe = self.redis.pipeline(transaction=True)  # one slot: the person's
        pipe.set(key, self.keyring.encrypt_json(record.as_dict(), key), exat=expires_at)
        pipe.zadd(index, {record.id: now})
        pipe.zremrangebyscore(index, "-inf", f"({now - PAYMENT_RETENTION}")
        remember_person_key(pipe, person_id, key, expires_at)
        remember_person_key(pipe, person_id, index, None)
        pipe.execute()
        self.replicated(person_id, "new payment")
        # global indexes last: a payment is reachable by id only once its record is complete
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(key_names.payment_owner(record.id), person_id, exat=expires_at)
        client_index = key_names.client_payments(client_id)
        pipe.zadd(client_index, {record.id: now})
        pipe.zremrangebyscore(client_index, "-inf", f"({now - PAYMENT_RETENTION}")
        pipe.execute()
        return record

    def get(self, payment_id: str) -> PaymentRecord | None:
        """The payment ``payment_id`` (anyone's: the caller checks who may see it)."""
        owner = self.redis.get(key_names.payment_owner(payment_id))
        return self.get_for(owner.decode(), payment_id) if owner else None

    def get_for(self, person_id: str, payment_id: str) -> PaymentRecord | None:
        key = key_names.payment(person_id, payment_id)
        blob = self.redis.get(key)
        return PaymentRecord.from_dict(self.keyring.decrypt_json(blob.decode(), key)) if blob else None

    def set_status(self, record: PaymentRecord, status: PaymentStatus, error: str | None = None,
                   *, fact: dict[str, Any] | None = None) -> PaymentRecord:
        """The upstream's newer view of the payment (last writer wins: both read the upstream);
        ``fact`` goes to the person's event outbox in the same transaction when it changed."""
        if (status, error) == (record.status, record.error):
            return record
        updated = replace(record, status=status, error=error, updated_at=self.now())
        key = key_names.payment(record.person_id, record.id)
        pipe = self.redis.pipeline(transaction=True)  # one slot: the person's
        pipe.set(key, self.keyring.encrypt_json(updated.as_dict(), key), keepttl=True, xx=True)
        execute_with_fact(self.redis, pipe, record.person_id, fact)
        return updated

    def for_person(self, person_id: str, limit: int = 50) -> list[PaymentRecord]:
        """The person's payments, newest first."""
        ids = [raw.decode() for raw in self.redis.zrevrange(key_names.person_payments(person_id),
                                                            0, limit - 1)]
        found = (self.get_for(person_id, payment_id) for payment_id in ids)
        return [record for record in found if record is not None]

    def for_client(self, client_id: str, limit: int = 50) -> list[str]:
        """The ids of the client's payments, newest first."""
        return [raw.decode() for raw in self.redis.zrevrange(key_names.client_payments(client_id),
                                                             0, limit - 1)]

    # ------------------------------------------------------------ the tokens of a payment

    def link_family(self, record: PaymentRecord, family: str) -> None:
        """The tokens descending from the code issued for this payment carry it."""
        key = key_names.payment_family(record.person_id, family)
        expires_at = record.created_at + PAYMENT_RETENTION
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key, record.id, exat=expires_at)
        remember_person_key(pipe, record.person_id, key, expires_at)
        pipe.execute()

    def for_family(self, person_id: str, family: str) -> PaymentRecord | None:
        payment_id = self.redis.get(key_names.payment_family(person_id, family))
        return self.get_for(person_id, payment_id.decode()) if payment_id else None
