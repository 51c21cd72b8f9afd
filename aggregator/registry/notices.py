"""The core's side of ``PersonNotices``: plugins report on registrations between visits."""

from __future__ import annotations

import time

from aggregator.events import facts
from aggregator.store import Store
from aggregator.store.notices import Notice
from aggregator.upstream.contract import PersonNotices, StatusReport


class RegistryNotices(PersonNotices):
    """Notices and status reports of one plugin, applied to the store."""

    def __init__(self, store: Store, provider: str) -> None:
        self.store = store
        self.provider = provider

    def _registration_id(self, person_id: str, external_id: str | None) -> str | None:
        if external_id is None:
            return None
        return self.store.registrations.find_external(person_id, self.provider, external_id)

    def record(self, person_id: str, message: str, *, external_id: str | None = None) -> None:
        notice = Notice(int(time.time()), self.provider, message[:500],
                        self._registration_id(person_id, external_id))
        self.store.notices.add(person_id, notice)

    def report_status(self, person_id: str, external_id: str, report: StatusReport) -> bool:
        registration_id = self._registration_id(person_id, external_id)
        record = self.store.registrations.get(person_id, registration_id) if registration_id else None
        if record is None:
            return False
        self.store.registrations.set_status(record, report.status, report.error,
                                            report.consent_expires_at)
        return True

    def data_changed(self, person_id: str, external_id: str) -> bool:
        registration_id = self._registration_id(person_id, external_id)
        if registration_id is None or self.store.registrations.get(person_id, registration_id) is None:
            return False
        facts.data_changed(self.store, person_id, registration_id)
        return True
