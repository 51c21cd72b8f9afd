"""What other code calls to emit an event: outbox facts (``aggregator/store/events.py``).

A fact names what changed, not who hears of it: the relay finds the apps concerned when it
makes SETs. Facts that go with a change are passed to the repository making that change (so
both are written in one transaction); the others are recorded on their own.
"""

from __future__ import annotations

import time
from typing import Any

from aggregator.store import Store
from aggregator.store.events import record_fact
from aggregator.store.grants import Grant


def grant_revoked(grant: Grant) -> dict[str, Any]:
    """The person ended the grant (dashboard): for ``GrantRepository.delete``."""
    return {"type": "grant_revoked", "client_id": grant.client_id, "grant_id": grant.id,
            "at": int(time.time())}


def grant_changed(grant: Grant) -> dict[str, Any]:
    """The person narrowed the grant (dashboard): for ``GrantRepository.narrow``."""
    return {"type": "grant_changed", "client_id": grant.client_id, "grant_id": grant.id,
            "at": int(time.time())}


def data_changed(store: Store, person_id: str, registration_id: str) -> None:
    """New data is available at an institution (a webhook, the sandbox bank's change)."""
    record_fact(store.redis, person_id, {"type": "new_data", "registration_id": registration_id,
                                         "at": int(time.time())})


def payment_status_changed(*, client_id: str, grant_id: str, payment_id: str,
                           status: str) -> dict[str, Any]:
    """The AS learnt a payment's new status from the bank: for ``PaymentRepository.set_status``."""
    return {"type": "payment_status", "client_id": client_id, "grant_id": grant_id,
            "payment_id": payment_id, "status": status, "at": int(time.time())}
