"""Stale-token feedback: ``rejected_registration`` at ``POST /introspect`` (our extension).

An app that got 401 from an institution with a token this AS released names that registration
when it introspects again. The cached upstream token is dropped and the introspection that
follows refreshes it upstream, under the registration's refresh lease (single-flight). However
many apps report it, at most one forced refresh per registration runs every
:data:`REPORT_INTERVAL` seconds: a report within that time is answered from the cache, which
already holds the token fetched after the first report. A refresh the upstream refuses marks the
registration ``reauth_required`` as any refresh does (:meth:`FreshTokens._refresh_held`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aggregator.errors import InvalidRequest
from aggregator.store.grants import Grant, effective_pairs
from aggregator.store.tokens import AccessTokenRecord

if TYPE_CHECKING:
    from aggregator.services import Services

log = logging.getLogger("aggregator.introspection")

#: the request parameter naming the registration whose token the institution refused
PARAMETER = "rejected_registration"
#: seconds during which further reports of one registration do not force another refresh
REPORT_INTERVAL = 30


def report_rejected(svc: Services, grant: Grant, record: AccessTokenRecord, registration_id: str) -> None:
    """Drop the registration's cached upstream token (once per interval) before the response
    is built. Only a registration the token reaches counts; any other id gets the same error,
    whether it exists or not, so the parameter reveals nothing about other registrations."""
    if registration_id not in effective_pairs(grant, record.pairs, record.scope):
        raise InvalidRequest(f"'{PARAMETER}' is not a registration this token reaches.")
    if svc.store.registrations.drop_rejected(grant.person_id, registration_id, REPORT_INTERVAL):
        log.info("upstream token reported rejected; refreshing",
                 extra={"registration_id": registration_id, "client_id": record.client_id})
